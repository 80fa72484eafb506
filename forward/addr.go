package forward

import (
	"net"
	"net/netip"
)

// notPublic are the IPv4 ranges a router's WAN address can be in without
// being reachable from the internet: RFC 1918 private space, RFC 6598
// shared (carrier-grade NAT) space, and the reserved ranges miniupnpd also
// refuses to map on (RFC 5737 documentation, RFC 2544 benchmarking,
// RFC 1112 class E).
var notPublic = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// IsPublic reports whether a WAN address can be reached from the internet.
func IsPublic(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	for _, p := range notPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// SourceAddr is the address this host sends from toward dst: what a
// gateway sees as the requesting client (UPnP secure mode, NAT-PMP, PCP's
// client IP) and what "internal_host: self" stands for. Connecting a UDP
// socket makes the kernel choose the route and source address; no packet
// is sent.
func SourceAddr(dst netip.AddrPort) (netip.Addr, error) {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		return netip.Addr{}, err
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}
