package upnp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"

	"github.com/portfwd/portfwd/forward"
)

// NAT-PMP errors: the result codes of RFC 6886 §3.5 and the library's
// transport failures, turned into errors that say what to do next.

// natpmpError is an error whose text is written for the user and which
// unwraps to what callers branch on (a forward sentinel, a
// *forward.ConflictError or a *NATPMPError).
type natpmpError struct {
	msg string
	err error
}

func (e *natpmpError) Error() string { return e.msg }
func (e *natpmpError) Unwrap() error { return e.err }

// NATPMPError is a result code other than success (RFC 6886 §3.5). It
// unwraps to the forward sentinel the code means, if any.
type NATPMPError struct {
	Code uint16
	Err  error
}

// The result codes of RFC 6886 §3.5.
const (
	natpmpUnsupportedVersion = 1
	natpmpRefused            = 2
	natpmpNetworkFailure     = 3
	natpmpOutOfResources     = 4
	natpmpUnsupportedOpcode  = 5
)

var natpmpCodeText = map[uint16]string{
	natpmpUnsupportedVersion: "unsupported version",
	natpmpRefused:            "not authorized/refused",
	natpmpNetworkFailure:     "network failure",
	natpmpOutOfResources:     "out of resources",
	natpmpUnsupportedOpcode:  "unsupported opcode",
}

func (e *NATPMPError) Error() string {
	if t, ok := natpmpCodeText[e.Code]; ok {
		return fmt.Sprintf("NAT-PMP result code %d (%s)", e.Code, t)
	}
	return fmt.Sprintf("NAT-PMP result code %d", e.Code)
}

// Unwrap returns the sentinel the code maps to.
func (e *NATPMPError) Unwrap() error { return e.Err }

// explain turns a library error into one that says what to do next. The
// library reports result codes only as text ("Non-zero result code 2
// (...)"), so the code is read back from it. For a network failure on a
// mapping request the external address is asked for, to tell a gateway
// behind carrier-grade NAT from one with no WAN connection yet.
func (n *NATPMP) explain(ctx context.Context, doing string, err error, mapping bool) error {
	code, ok := resultCode(err)
	if !ok {
		return n.transportError(doing, err)
	}
	e := &NATPMPError{Code: code}
	var advice string
	switch code {
	case natpmpUnsupportedVersion:
		advice = "the gateway speaks another version of the protocol; use backend pcp or upnp"
	case natpmpRefused:
		e.Err = forward.ErrNotAuthorized
		advice = "NAT-PMP is switched off or refuses this host; enable it on the router, or use backend upnp"
	case natpmpNetworkFailure:
		advice = n.networkFailure(ctx, e, mapping)
	case natpmpOutOfResources:
		advice = "the gateway has no room for another mapping; remove unused mappings on the router or try again later"
	case natpmpUnsupportedOpcode:
		advice = "the gateway does not implement this request; use backend upnp"
	default:
		advice = "the gateway's answer is not in RFC 6886; use backend upnp"
	}
	return &natpmpError{err: e, msg: fmt.Sprintf("%s: %v: %s", doing, e, advice)}
}

// networkFailure explains result code 3 (RFC 6886 §3.5): the gateway has
// no usable WAN address. miniupnpd, like many routers, also answers so when
// its WAN address is private or shared (RFC 1918, RFC 6598 100.64/10); that
// is wrapped as forward.ErrDoubleNAT when the address confirms it.
func (n *NATPMP) networkFailure(ctx context.Context, e *NATPMPError, mapping bool) string {
	const cgnat = "if the router's own WAN address is private or in 100.64.0.0/10, it is behind another NAT (carrier-grade NAT) and nothing can be forwarded to it: ask the ISP for a public IPv4 address"
	if mapping {
		if c, err := n.client(ctx); err == nil {
			if res, err := c.GetExternalAddress(); err == nil {
				if wan := netip.AddrFrom4(res.ExternalIPAddress); !forward.IsPublic(wan) {
					e.Err = forward.ErrDoubleNAT
					return fmt.Sprintf("the gateway's WAN address %v is private or shared, so it is behind another NAT (carrier-grade NAT) and nothing can be forwarded to it from the internet; ask the ISP for a public IPv4 address", wan)
				}
			}
		}
	}
	// Without an address to tell, count it as double NAT as UPnP's
	// "0.0.0.0" is: a diagnosis that also covers a WAN that is down.
	e.Err = forward.ErrDoubleNAT
	return "the gateway has no working WAN connection (no DHCP lease or external address yet); " + cgnat
}

// resultCode reads the result code out of the library's error text.
func resultCode(err error) (uint16, bool) {
	rest, ok := strings.CutPrefix(err.Error(), "Non-zero result code ")
	if !ok {
		return 0, false
	}
	digits, _, _ := strings.Cut(rest, " ")
	code, perr := strconv.ParseUint(digits, 10, 16)
	return uint16(code), perr == nil
}

// transportError explains a request that got no usable answer: silence,
// an ICMP port unreachable, or a reply that is not NAT-PMP version 0.
func (n *NATPMP) transportError(doing string, err error) error {
	s := err.Error()
	switch {
	case s == "Timed out trying to contact gateway":
		return &natpmpError{err: forward.ErrNoGateway, msg: fmt.Sprintf(
			"%s: NAT-PMP did not answer at %v within %v (is NAT-PMP switched off on the router?); try backend upnp",
			doing, netip.AddrPortFrom(n.gw, natpmpPort), n.timeout)}
	case isConnRefused(err):
		return &natpmpError{err: forward.ErrNoGateway, msg: fmt.Sprintf(
			"%s: nothing listens for NAT-PMP at %v (is NAT-PMP switched off on the router?); try backend upnp",
			doing, netip.AddrPortFrom(n.gw, natpmpPort))}
	case strings.HasPrefix(s, "unknown protocol version"):
		return fmt.Errorf("%s: the gateway answered another protocol (%v); use backend pcp or upnp", doing, err)
	}
	return fmt.Errorf("%s: NAT-PMP: %w", doing, err)
}

// isConnRefused: the gateway sent ICMP port unreachable, which a connected
// UDP socket reports on the next read.
func isConnRefused(err error) bool {
	var se *net.OpError
	return errors.As(err, &se) && errors.Is(se.Err, syscall.ECONNREFUSED)
}
