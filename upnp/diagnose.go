package upnp

import (
	"context"
	"errors"
	"fmt"

	"github.com/portfwd/portfwd/forward"
)

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
	case xerr == nil && !forward.IsPublic(ext):
		return fmt.Errorf("the router's own WAN address is %s: %s: %w: %w", ext, doubleNATAdvice, forward.ErrDoubleNAT, err)
	case errors.Is(xerr, errNoExternalAddr):
		// miniupnpd hides a private WAN address behind "0.0.0.0".
		return fmt.Errorf("the router reports no public WAN address: %s: %w: %w", doubleNATAdvice, forward.ErrDoubleNAT, err)
	}
	return fmt.Errorf("the router could not install the mapping; check the router's log: %w", err)
}
