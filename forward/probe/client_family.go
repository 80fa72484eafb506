package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/portfwd/portfwd/forward"
)

// ErrNotThisHost: a request to a probe server was to leave from an
// address this host does not have. Over IPv6 the probe server probes the
// address a request comes from, so a pinhole to another host can only be
// checked from outside by portfwd on that host.
var ErrNotThisHost = errors.New("not an address of this host")

// NoFamilyError: the probe server's URL names no address of one family,
// so a request over that family (and the probe of this home over it)
// cannot be made.
type NoFamilyError struct {
	URL    string
	Family forward.Family
	Why    string // "its URL names it by 50.60.70.80", or the lookup's error
}

func (e *NoFamilyError) Error() string {
	fam := familyName(e.Family)
	example := "http://[2001:db8::8]:8443"
	if e.Family == forward.IPv4 {
		example = "http://192.0.2.8:8443"
	}
	return fmt.Sprintf("the probe server at %s cannot be reached over %s (%s), so the probe over %s could not run: "+
		"give --via a name of the server with an %s address, or a second --via with its %s address such as %s",
		e.URL, fam, e.Why, fam, fam, fam, example)
}

// familyName is "IPv4" or "IPv6", as people write them.
func familyName(f forward.Family) string {
	if f == forward.IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// urlFor is the URL requests over family go to: URL6 over IPv6 when set.
func (v RemoteVantage) urlFor(family forward.Family) string {
	if family == forward.IPv6 && v.URL6 != "" {
		return v.URL6
	}
	return v.URL
}

// unreachable is the error of a request from from that never got an
// answer, saying over which family it was tried.
func (v RemoteVantage) unreachable(from netip.Addr, err error) error {
	var nf *NoFamilyError
	switch {
	case errors.As(err, &nf):
		return nf
	case errors.Is(err, ErrNotThisHost):
		return fmt.Errorf("asking the probe server from %s: %w", from, ErrNotThisHost)
	}
	fam := familyName(forward.FamilyOf(from))
	return fmt.Errorf("cannot reach the probe server at %s over %s: %w; check that portfwd probe-server runs there, listens on %s (--listen :8443, its default, listens on IPv4 and IPv6) and its port is open",
		v.URL, fam, err, fam)
}

// familyDialer connects to the probe server over from's family only,
// from from unless it is unspecified: the server probes the address it
// sees, so the request must come from the address being checked.
type familyDialer struct {
	from netip.Addr
	url  string // for errors
}

// DialContext connects to address (host:port) over the dialer's family.
func (d familyDialer) DialContext(ctx context.Context, _, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	addrs, err := d.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	nd := net.Dialer{}
	if !d.from.IsUnspecified() {
		nd.LocalAddr = &net.TCPAddr{IP: d.from.AsSlice(), Zone: d.from.Zone()}
	}
	network := "tcp4"
	if d.family() == forward.IPv6 {
		network = "tcp6"
	}
	var firstErr error
	for _, a := range addrs {
		conn, err := nd.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return conn, nil
		}
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			return nil, fmt.Errorf("%s: %w", d.from, ErrNotThisHost)
		}
		firstErr = cmpOr(firstErr, err)
	}
	return nil, firstErr
}

// family is the family the dialer connects over.
func (d familyDialer) family() forward.Family { return forward.FamilyOf(d.from) }

// resolve is host's addresses of the dialer's family: the literal itself,
// or what the resolver knows; a *NoFamilyError when there is none.
func (d familyDialer) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	fam := d.family()
	if a, err := netip.ParseAddr(host); err == nil {
		if forward.FamilyOf(a.Unmap()) != fam {
			return nil, &NoFamilyError{URL: d.url, Family: fam, Why: "its URL names it by its " + familyName(forward.FamilyOf(a.Unmap())) + " address " + a.String()}
		}
		return []netip.Addr{a.Unmap()}, nil
	}
	network := "ip4"
	if fam == forward.IPv6 {
		network = "ip6"
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, network, host)
	if err != nil || len(addrs) == 0 {
		why := fmt.Sprintf("%s has no %s address", host, familyName(fam))
		if err != nil {
			why += ": " + err.Error()
		}
		return nil, &NoFamilyError{URL: d.url, Family: fam, Why: why}
	}
	return addrs, nil
}

// cmpOr is a, or b when a is nil.
func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
