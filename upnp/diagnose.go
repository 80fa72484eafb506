package upnp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/portfwd/portfwd/forward"
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

// isPublic reports whether a WAN address can be reached from the internet.
func isPublic(a netip.Addr) bool {
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

// doubleNATAdvice is what to do when the router's WAN side is not the
// internet.
const doubleNATAdvice = "the router itself is behind carrier-grade NAT / another router, so forwards on it cannot be reached from the internet; ask your ISP for a public IPv4 address, or forward the port on the upstream router too"

// diagnoseActionFailed explains 501 Action Failed on AddPortMapping. The
// code says nothing by itself; the common cause on home routers is that the
// router's own WAN address is not public (miniupnpd logs "Port forwarding
// is impossible" and answers 501 to every AddPortMapping), so ask the
// gateway for it.
func (g *IGD) diagnoseActionFailed(ctx context.Context, err error) error {
	ext, xerr := g.ExternalAddr(ctx)
	switch {
	case xerr == nil && !isPublic(ext):
		return fmt.Errorf("the router's own WAN address is %s: %s: %w: %w", ext, doubleNATAdvice, forward.ErrDoubleNAT, err)
	case errors.Is(xerr, errNoExternalAddr):
		// miniupnpd hides a private WAN address behind "0.0.0.0".
		return fmt.Errorf("the router reports no public WAN address: %s: %w: %w", doubleNATAdvice, forward.ErrDoubleNAT, err)
	}
	return fmt.Errorf("the router could not install the mapping; check the router's log: %w", err)
}
