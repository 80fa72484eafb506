package probe

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// sharedSpace is the shared address space of carrier-grade NAT (RFC 6598):
// no internet client comes from it, only hosts of the server's own carrier
// or provider, so it is private here.
var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

// thisNetwork is "this host on this network" (RFC 1122 §3.2.1.3, RFC 6890):
// never a peer's address, and dialing it may reach the server's own host.
var thisNetwork = netip.MustParsePrefix("0.0.0.0/8")

// loopbackClients are loopback addresses a Server treats as clients on the
// internet. Only this package's tests set it (server_test.go): every address
// they can connect from is loopback. It is empty otherwise.
var loopbackClients []netip.Addr

// clientAddr is the address a request is answered for: the one address the
// server will probe, and the key of its rate limit. It is the TCP peer,
// unless the peer is one of TrustedProxies, which names the client in
// ClientIPHeader. Headers from anyone else are whatever the client wants
// them to be, so they are never read.
func (s *Server) clientAddr(r *http.Request) (netip.Addr, *serverError) {
	peer, err := peerAddr(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, refusal(http.StatusBadRequest, "cannot tell where the request came from: %v", err)
	}
	if !slices.Contains(s.TrustedProxies, peer) {
		return peer, nil
	}
	client, err := clientFromHeader(r.Header, s.ClientIPHeader)
	if err != nil {
		return netip.Addr{}, refusal(http.StatusBadRequest, "the reverse proxy at %s did not say which client it forwards: %v; configure it to set that header", peer, err)
	}
	return client, nil
}

// peerAddr is the IP of the TCP peer, without a zone: a zone names an
// interface of the server, not part of the peer's address.
func peerAddr(remote string) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr().Unmap().WithZone(""), nil
}

// clientFromHeader reads the client's address from header name, as a
// proxy writes it: the last address of the header's last line, which is
// the one the proxy itself added (X-Forwarded-For, Forwarded) or set
// (X-Real-IP). Any address before it came from the client.
func clientFromHeader(h http.Header, name string) (netip.Addr, error) {
	if name == "" {
		return netip.Addr{}, errors.New("no client address header is configured")
	}
	values := h.Values(name)
	if len(values) == 0 {
		return netip.Addr{}, fmt.Errorf("no %s header", name)
	}
	last := values[len(values)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	last = strings.TrimSpace(last)
	if strings.EqualFold(name, "Forwarded") {
		last = forwardedFor(last)
	}
	a, err := parseHostAddr(last)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s %q: %w", name, last, err)
	}
	return a, nil
}

// forwardedFor is the for= parameter of one Forwarded element (RFC 7239
// §4), such as `for="[2001:db8::1]:4711";proto=https`.
func forwardedFor(element string) string {
	for pair := range strings.SplitSeq(element, ";") {
		key, value, _ := strings.Cut(strings.TrimSpace(pair), "=")
		if strings.EqualFold(key, "for") {
			return strings.Trim(value, `"`)
		}
	}
	return ""
}

// parseHostAddr reads an address with or without a port and brackets:
// 192.0.2.7, 192.0.2.7:4711, 2001:db8::7, [2001:db8::7] or [2001:db8::7]:4711.
func parseHostAddr(s string) (netip.Addr, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), nil
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		return netip.Addr{}, errors.New("not an IP address")
	}
	return a.Unmap().WithZone(""), nil
}

// checkClient refuses to probe an address that is not a client on the
// internet: the server's own host (loopback, unspecified), a link it is on
// (link-local), or, unless AllowPrivate, a private network. Such a peer is
// a reverse proxy or a neighbour of the server, and probing it would reach
// services the server's host keeps from the internet.
func (s *Server) checkClient(a netip.Addr) *serverError {
	if slices.Contains(loopbackClients, a) {
		return nil
	}
	what, fix := ownNetwork(a)
	if what == "" && !s.AllowPrivate {
		what, fix = privateNetwork(a)
	}
	if what == "" {
		return nil
	}
	return refusal(http.StatusForbidden, "this probe server does not probe %s, %s; %s", a, what, fix)
}

// notFromInternet is the fix of a refused peer that no flag allows.
const notFromInternet = "it probes homes from the internet only"

// ownNetwork says why a is on the server's own host or link, and what to
// do about it; "" when it is not.
func ownNetwork(a netip.Addr) (what, fix string) {
	switch {
	case a.IsLoopback():
		return "a loopback address (the server's own host)",
			"behind a reverse proxy on the same host, start probe-server with --trusted-proxy and --client-ip-header so that it probes the client the proxy names"
	case a.IsUnspecified() || thisNetwork.Contains(a):
		return "an unspecified address (the server's own host)", notFromInternet
	case a.IsLinkLocalUnicast():
		return "a link-local address (the server's own link)", notFromInternet
	}
	return "", ""
}

// privateNetwork says why a is not on the internet, and what to do about
// it; "" when it is.
func privateNetwork(a netip.Addr) (what, fix string) {
	const allow = "start probe-server with --allow-private to probe hosts on its own network"
	switch {
	case a.IsPrivate():
		return "a private address (RFC 1918, RFC 4193)", allow
	case sharedSpace.Contains(a):
		return "a carrier-grade NAT address (RFC 6598)", allow
	}
	return "", ""
}

// checkProxyConfig reports a half-configured trusted proxy: a proxy
// without the header that names its clients, or the reverse.
func (s *Server) checkProxyConfig() error {
	if len(s.TrustedProxies) > 0 && s.ClientIPHeader == "" {
		return errors.New("trusted proxies need a client address header (--client-ip-header) to read the client from")
	}
	if s.ClientIPHeader != "" && len(s.TrustedProxies) == 0 {
		return fmt.Errorf("a client address header (%s) is only read from a trusted proxy; name it with --trusted-proxy", s.ClientIPHeader)
	}
	for _, p := range s.TrustedProxies {
		if !p.IsValid() || p.Is4In6() || p.Zone() != "" {
			return fmt.Errorf("trusted proxy %q: want a plain IPv4 or IPv6 address", p)
		}
	}
	return nil
}
