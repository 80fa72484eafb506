package upnp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/huin/goupnp"
)

// Pinholes on IPv6 (UPnP WANIPv6FirewallControl:1, part of IGD:2). On
// IPv6 there is no NAT: opening a port is a firewall rule on the router
// letting traffic in to the host's own global address and port. The router
// names each rule by a UniqueID it chooses; rules cannot be listed, so the
// caller keeps the IDs.
//
// Secure mode (on in every router) grants a pinhole only to the address
// the request comes from: the control URL must be reached over IPv6 from
// the internal client's own address. miniupnpd serves its description and
// control URLs on its LAN IPv6 address too
// (http://[router's LAN IPv6]:5000/rootDesc.xml in the lab); through the
// IPv4 URL it answers 606.

// pinholeServiceType is the service a router lists beside its
// WANIPConnection services when it opens pinholes.
const pinholeServiceType = "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1"

// WANIPv6FirewallControl:1 error codes (its §2.4 action tables; the same
// numbers in miniupnpd and the Orange IGD2 reference implementation).
const (
	codePinholeSpaceExhausted   = 701
	codeFirewallDisabled        = 702
	codeInboundPinholeForbidden = 703
	codePinholeNoSuchEntry      = 704
	codeProtocolNotSupported    = 705
	codeInternalPortWildcard    = 706
	codeProtocolWildcard        = 707
	codePinholeWildCardSrcIP    = 708
	codeNoTrafficReceived       = 709
)

// pinholeCodeNames name the codes above when a router leaves
// errorDescription empty (SOAPError.Error falls back to codeNames, which
// holds the port-mapping meanings of 7xx; these are looked up first for
// pinhole actions).
var pinholeCodeNames = map[int]string{
	codePinholeSpaceExhausted:   "PinholeSpaceExhausted",
	codeFirewallDisabled:        "FirewallDisabled",
	codeInboundPinholeForbidden: "InboundPinholeNotAllowed",
	codePinholeNoSuchEntry:      "NoSuchEntry",
	codeProtocolNotSupported:    "ProtocolNotSupported",
	codeInternalPortWildcard:    "InternalPortWildcardingNotAllowed",
	codeProtocolWildcard:        "ProtocolWildcardingNotAllowed",
	codePinholeWildCardSrcIP:    "WildCardNotPermittedInSrcIP",
	codeNoTrafficReceived:       "NoTrafficReceived",
}

// pinholeHints say what to do about each error a pinhole action can get.
var pinholeHints = map[int]string{
	codeNotAuthorized: "the router grants a pinhole only to the address asking (secure mode): " +
		"send the request over IPv6 from the internal client's own address, to the router's IPv6 control URL",
	codePinholeSpaceExhausted:   "the router has no room for another pinhole: remove pinholes no longer needed",
	codeFirewallDisabled:        "the router's IPv6 firewall is off, so every port is already open; no pinhole is needed",
	codeInboundPinholeForbidden: "the router does not allow inbound pinholes: allow them in its IPv6 firewall settings (often \"UPnP IPv6 pinholes\"), or open the port in its web page",
	codePinholeNoSuchEntry:      "the router does not have this pinhole (it expired or the router restarted): open it again",
	codeProtocolNotSupported:    "the router cannot open pinholes for this protocol",
	codeInternalPortWildcard:    "the internal port must be a port number, not 0",
	codeProtocolWildcard:        "the protocol must be TCP or UDP",
	codePinholeWildCardSrcIP:    "the internal client must be an IPv6 address",
	codeNoTrafficReceived:       "the router counted no traffic through the pinhole, which does not mean it is closed (miniupnpd with nftables never counts any); test it from outside instead",
}

// FirewallStatus is GetFirewallStatus's answer.
type FirewallStatus struct {
	Enabled        bool // false: the firewall is off, everything is open already
	InboundAllowed bool // false: the router opens no pinholes
}

// Pinhole is what AddPinhole opens: any remote host and port may reach
// Client's Port over Protocol for Lease.
type Pinhole struct {
	Client   netip.Addr // the internal client's global IPv6 address
	Port     uint16
	Protocol string // "TCP" or "UDP"
	Lease    time.Duration
}

// PinholeClient sends WANIPv6FirewallControl:1 actions to one router. Every
// request goes to the host of the description it was made from and its
// answers are bounded (gatewayClient); each has its own timeout.
type PinholeClient struct {
	c       serviceClient
	control *url.URL
	timeout time.Duration
}

// pinholeControl finds the WANIPv6FirewallControl:1 control URL in the
// device tree.
func pinholeControl(root *goupnp.RootDevice) (*url.URL, bool) {
	var control *url.URL
	root.Device.VisitServices(func(s *goupnp.Service) {
		if control == nil && strings.TrimSpace(s.ServiceType) == pinholeServiceType && s.ControlURL.Ok {
			control = &s.ControlURL.URL
		}
	})
	return control, control != nil
}

// ControlURL is where the actions go.
func (p *PinholeClient) ControlURL() string { return p.control.String() }

// do sends one action under the client's timeout and turns a fault into a
// *SOAPError explained by pinholeError.
func (p *PinholeClient) do(ctx context.Context, action string, in, out any) error {
	err := timed(ctx, p.timeout, action, func(ctx context.Context) error { return p.c.do(ctx, action, in, out) })
	return pinholeError(asSOAPError(action, err))
}

// GetFirewallStatus tells a firewall that is off, or one that allows no
// pinholes, from one that opens them.
func (p *PinholeClient) GetFirewallStatus(ctx context.Context) (FirewallStatus, error) {
	var out struct{ FirewallEnabled, InboundPinholeAllowed string }
	if err := p.do(ctx, "GetFirewallStatus", nil, &out); err != nil {
		return FirewallStatus{}, err
	}
	return FirewallStatus{Enabled: parseSOAPBool(out.FirewallEnabled), InboundAllowed: parseSOAPBool(out.InboundPinholeAllowed)}, nil
}

// AddPinhole opens h from any remote host and port and returns the
// router's UniqueID for it.
func (p *PinholeClient) AddPinhole(ctx context.Context, h Pinhole) (uint16, error) {
	proto, err := protocolNumber(h.Protocol)
	if err != nil {
		return 0, err
	}
	if !h.Client.Is6() || h.Client.Is4In6() {
		return 0, fmt.Errorf("a pinhole needs the internal client's IPv6 address, not %v", h.Client)
	}
	in := struct{ RemoteHost, RemotePort, InternalClient, InternalPort, Protocol, LeaseTime string }{
		"", "0", h.Client.WithZone("").String(), strconv.Itoa(int(h.Port)), proto, pinholeLease(h.Lease)}
	var out struct{ UniqueID string }
	if err := p.do(ctx, "AddPinhole", &in, &out); err != nil {
		return 0, err
	}
	return parseUint16("UniqueID", out.UniqueID)
}

// UpdatePinhole renews the pinhole id for lease.
func (p *PinholeClient) UpdatePinhole(ctx context.Context, id uint16, lease time.Duration) error {
	in := struct{ UniqueID, NewLeaseTime string }{strconv.Itoa(int(id)), pinholeLease(lease)}
	return p.do(ctx, "UpdatePinhole", &in, nil)
}

// DeletePinhole closes the pinhole id.
func (p *PinholeClient) DeletePinhole(ctx context.Context, id uint16) error {
	in := struct{ UniqueID string }{strconv.Itoa(int(id))}
	return p.do(ctx, "DeletePinhole", &in, nil)
}

// CheckPinholeWorking asks whether traffic passed the pinhole id. A lost
// pinhole answers 704 (IsPinholeGone); one the router counted no traffic
// through, 709 — miniupnpd 2.3.1 with nftables always does, even after a
// connection passed (lab).
func (p *PinholeClient) CheckPinholeWorking(ctx context.Context, id uint16) (bool, error) {
	in := struct{ UniqueID string }{strconv.Itoa(int(id))}
	var out struct{ IsWorking string }
	if err := p.do(ctx, "CheckPinholeWorking", &in, &out); err != nil {
		return false, err
	}
	return parseSOAPBool(out.IsWorking), nil
}

// IsPinholeGone reports whether err says the router has no such pinhole:
// it expired or the router restarted, so it must be opened again under a
// new UniqueID. The spec's answer is 704 NoSuchEntry. miniupnpd 2.3.1
// answers 402 Invalid Args instead to UpdatePinhole, CheckPinholeWorking
// and DeletePinhole of an unknown UniqueID, secure mode or not (measured
// in the lab: it looks the ID up to check the requester, fails and calls
// the arguments invalid); this client sends those actions only a UniqueID
// the router gave and a lease in range, so a 402 there means the same.
func IsPinholeGone(err error) bool {
	var se *SOAPError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Action {
	case "UpdatePinhole", "CheckPinholeWorking", "DeletePinhole":
		return se.Code == codePinholeNoSuchEntry || se.Code == codeInvalidArgs
	}
	return se.Code == codePinholeNoSuchEntry
}

// protocolNumber is the IANA protocol number the pinhole actions take.
func protocolNumber(proto string) (string, error) {
	switch strings.ToUpper(proto) {
	case "TCP":
		return "6", nil
	case "UDP":
		return "17", nil
	}
	return "", fmt.Errorf("pinhole protocol %q: want TCP or UDP", proto)
}

// maxPinholeLease is the longest lease WANIPv6FirewallControl:1 allows
// (LeaseTime is 1 to 86400 s); miniupnpd answers 402 to a longer one.
const maxPinholeLease = 86400 * time.Second

// pinholeLease is a lease in whole seconds within 1 s and maxPinholeLease:
// a longer one is asked for as a day and renewed by the caller.
func pinholeLease(d time.Duration) string {
	return strconv.FormatInt(min(max(int64(d/time.Second), 1), int64(maxPinholeLease/time.Second)), 10)
}

// pinholeError names a pinhole action's UPnP error and says what to do,
// keeping the *SOAPError for errors.As.
func pinholeError(err error) error {
	var se *SOAPError
	if !errors.As(err, &se) {
		return err
	}
	if se.Description == "" {
		se.Description = pinholeCodeNames[se.Code]
	}
	if hint := pinholeHints[se.Code]; hint != "" {
		return fmt.Errorf("%w: %s", err, hint)
	}
	return err
}
