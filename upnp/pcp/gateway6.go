package pcp

import (
	"bufio"
	"encoding/hex"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
)

// routeFile6 is where Linux lists the IPv6 routes.
const routeFile6 = "/proc/net/ipv6_route"

// defaultGateway6 is the next hop of this host's IPv6 default route, read
// from path (routeFile6), or the zero Addr when there is none (no IPv6, or
// not Linux). A link-local next hop — what routers announce in their
// router advertisements (RFC 4861 §6.3.4), so the usual case — carries
// the route's interface as its zone: without it the address names no
// link.
func defaultGateway6(path string) netip.Addr {
	f, err := os.Open(path)
	if err != nil {
		return netip.Addr{}
	}
	defer f.Close()
	return parseDefaultGateway6(f)
}

// parseDefaultGateway6 finds the first default route with a next hop in
// the lines of /proc/net/ipv6_route: "dst dstlen src srclen nexthop metric
// refcnt use flags name", addresses in 32 hex digits. The kernel lists
// routes of lower metric first.
func parseDefaultGateway6(r io.Reader) netip.Addr {
	zero := strings.Repeat("0", 32)
	sc := bufio.NewScanner(io.LimitReader(r, 1<<20))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 10 || f[0] != zero || f[1] != "00" || f[4] == zero || f[9] == "lo" {
			continue
		}
		b, err := hex.DecodeString(f[4])
		if err != nil || len(b) != 16 {
			continue
		}
		hop := netip.AddrFrom16([16]byte(b))
		if hop.Is4In6() || hop.IsMulticast() || hop.IsLoopback() {
			continue
		}
		if hop.IsLinkLocalUnicast() {
			hop = hop.WithZone(f[9])
		}
		return hop
	}
	return netip.Addr{}
}

// isLocalAddr reports whether a is one of this host's own addresses: a
// pinhole to it is asked from it (pcpMapper.from).
var isLocalAddr = func(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ad := range addrs {
		if p, err := netip.ParsePrefix(ad.String()); err == nil && p.Addr() == a.WithZone("") {
			return true
		}
	}
	return false
}
