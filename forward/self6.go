package forward

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
)

// SelfIPv6 is the IPv6 address "internal_host: self" stands for on an IPv6
// rule, and why it was chosen.
type SelfIPv6 struct {
	Addr      netip.Addr // zero when this host has none
	Interface string
	// Why says for people why Addr, when there was a choice to make, or
	// why there is none: "the stable address on eth0; 2 temporary privacy
	// addresses were passed over (they change every day)".
	Why string
}

// Address flags of /proc/net/if_inet6 (the kernel's IFA_F_*).
const (
	ifaTemporary  = 0x01 // an RFC 4941 privacy address: it changes daily
	ifaDADFailed  = 0x08
	ifaDeprecated = 0x20 // its preferred lifetime is over
	ifaTentative  = 0x40 // duplicate address detection still running
)

// hostAddr6 is one line of /proc/net/if_inet6.
type hostAddr6 struct {
	addr      netip.Addr
	iface     string
	scope     int
	flags     int
	prefixLen int
}

// ChooseSelfIPv6 reads this host's IPv6 addresses and chooses the one an
// IPv6 rule for self opens: a stable global unicast address, on the
// interface that carries self4 (the address toward the gateway), else on
// the interface of the IPv6 default route. Temporary privacy addresses
// (RFC 4941), deprecated and tentative ones, unique local (fc00::/7) and
// link-local addresses are passed over: a pinhole to one of them would
// stop working within a day, or never work from the internet.
func ChooseSelfIPv6(self4 netip.Addr) SelfIPv6 {
	addrs, err := readIfInet6("/proc/net/if_inet6")
	if err != nil {
		return SelfIPv6{Why: "this host's IPv6 addresses could not be read: " + err.Error()}
	}
	prefer := []string{interfaceOf(self4), defaultRouteInterface6("/proc/net/ipv6_route")}
	return chooseSelf6(addrs, prefer)
}

// chooseSelf6 is ChooseSelfIPv6 on the addresses read: the first usable
// address of the first preferred interface that has one (lowest address
// first, so the choice is the same on every run), else of any interface.
func chooseSelf6(addrs []hostAddr6, prefer []string) SelfIPv6 {
	usable, skipped := splitUsable6(addrs)
	if len(usable) == 0 {
		return SelfIPv6{Why: "this host has no stable global IPv6 address" + skippedText(skipped) +
			": check that the router hands out IPv6 (SLAAC or DHCPv6) and that the ISP gives the home a prefix"}
	}
	slices.SortStableFunc(usable, func(a, b hostAddr6) int { return a.addr.Compare(b.addr) })
	pick, toward := usable[0], false
	for _, name := range slices.Backward(prefer) {
		if i := slices.IndexFunc(usable, func(h hostAddr6) bool { return h.iface == name && name != "" }); i >= 0 {
			pick, toward = usable[i], true
		}
	}
	why := "the stable global address on " + pick.iface
	switch n := len(usable); {
	case n > 1 && toward:
		why += fmt.Sprintf(" (of %d stable global addresses, the lowest on the interface toward the gateway)", n)
	case n > 1:
		why += fmt.Sprintf(" (the lowest of %d stable global addresses)", n)
	}
	return SelfIPv6{Addr: pick.addr, Interface: pick.iface, Why: why + skippedText(skipped)}
}

// splitUsable6 sorts addresses into those a pinhole may open and counts
// of the others by why they were passed over.
func splitUsable6(addrs []hostAddr6) (usable []hostAddr6, skipped map[string]int) {
	skipped = make(map[string]int)
	for _, h := range addrs {
		switch {
		case h.flags&ifaTemporary != 0:
			skipped["temporary privacy address (it changes every day)"]++
		case h.flags&(ifaDeprecated|ifaTentative|ifaDADFailed) != 0:
			skipped["deprecated or tentative address"]++
		case h.addr.IsPrivate():
			skipped["unique local address (not reachable from the internet)"]++
		case h.scope != 0 || !h.addr.IsGlobalUnicast() || h.iface == "lo":
			// link-local and loopback ones (every host has them, not worth
			// a word), and any address on lo, which no router reaches
		default:
			usable = append(usable, h)
		}
	}
	return usable, skipped
}

// skippedText says which addresses were passed over: "; passed over:
// 2 temporary privacy address(es) (…)".
func skippedText(skipped map[string]int) string {
	if len(skipped) == 0 {
		return ""
	}
	var parts []string
	for what, n := range skipped {
		parts = append(parts, fmt.Sprintf("%d %s", n, what))
	}
	slices.Sort(parts)
	return "; passed over: " + strings.Join(parts, ", ")
}

// interfaceOf is the name of the interface holding address a, or "".
func interfaceOf(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, ifc := range ifaces {
		addrs, _ := ifc.Addrs()
		for _, ad := range addrs {
			if p, err := netip.ParsePrefix(ad.String()); err == nil && p.Addr().Unmap() == a.Unmap() {
				return ifc.Name
			}
		}
	}
	return ""
}

// readIfInet6 reads /proc/net/if_inet6: "address ifindex prefixlen scope
// flags name" per line, in hex.
func readIfInet6(path string) ([]hostAddr6, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil // IPv6 is disabled on this host
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseIfInet6(f), nil
}

// parseIfInet6 parses the lines of /proc/net/if_inet6, skipping any it
// cannot read.
func parseIfInet6(r io.Reader) []hostAddr6 {
	var out []hostAddr6
	sc := bufio.NewScanner(io.LimitReader(r, 1<<20))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 6 || len(f[0]) != 32 {
			continue
		}
		a, err := netip.ParseAddr(expandHex6(f[0]))
		plen, err2 := strconv.ParseInt(f[2], 16, 32)
		scope, err3 := strconv.ParseInt(f[3], 16, 32)
		flags, err4 := strconv.ParseInt(f[4], 16, 32)
		if err != nil || err2 != nil || err3 != nil || err4 != nil {
			continue
		}
		out = append(out, hostAddr6{addr: a, iface: f[5], scope: int(scope), flags: int(flags), prefixLen: int(plen)})
	}
	return out
}

// expandHex6 turns 32 hex digits into the colon form netip parses.
func expandHex6(h string) string {
	var b strings.Builder
	for i := 0; i < 32; i += 4 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+4])
	}
	return b.String()
}

// defaultRouteInterface6 is the interface of the IPv6 default route in
// /proc/net/ipv6_route (destination ::/0 with a next hop), or "".
func defaultRouteInterface6(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	return parseDefaultRoute6(f)
}

// parseDefaultRoute6 finds the default route's interface in the lines of
// /proc/net/ipv6_route: "dst dstlen src srclen nexthop metric refcnt use
// flags name".
func parseDefaultRoute6(r io.Reader) string {
	sc := bufio.NewScanner(io.LimitReader(r, 1<<20))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 10 && f[0] == strings.Repeat("0", 32) && f[1] == "00" && f[4] != strings.Repeat("0", 32) && f[9] != "lo" {
			return f[9]
		}
	}
	return ""
}
