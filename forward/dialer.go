package forward

import (
	"context"
	"fmt"
	"sync"
)

// Dialer lends a Loop one gateway per pass (use Connect as Loop.Connect).
//
// Its rules:
//   - Every pass holds the run lock (Lock), so a portfwd apply from a
//     timer never changes the gateway in the middle of a pass, and waits
//     at most one pass for it.
//   - A gateway is kept between passes and opened again only after a pass
//     failed on it, or after Reset. A backend that lists from its records
//     (Properties.ListsFromState) is opened anew for every pass, so it
//     reads the records another run may have changed meanwhile.
//   - The backend auto detection chose first is pinned for the dialer's
//     life: a router reboot must not switch a daemon from UPnP to NAT-PMP,
//     whose mappings UPnP would then see as foreign. Reset unpins it.
//   - What a backend warns of (Warner) is reported at the end of each pass.
type Dialer struct {
	// Open opens the gateway the config names, with backend, when not
	// empty, in place of the config's gateway.backend. It takes no lock.
	Open func(ctx context.Context, backend string) (*Gateway, error)
	// Lock takes the run lock for one pass; nil means none.
	Lock func() (*RunLock, error)
	// Logf reports the gateway chosen; Warnf a backend's warnings. Nil:
	// silent.
	Logf, Warnf func(format string, a ...any)

	mu     sync.Mutex
	pinned string
	kept   *Gateway
}

// Connect lends the gateway for one pass; the pass ends with its Done.
func (d *Dialer) Connect(ctx context.Context) (*Gateway, error) {
	var lock *RunLock
	if d.Lock != nil {
		var err error
		if lock, err = d.Lock(); err != nil {
			return nil, err
		}
	}
	g, err := d.gateway(ctx)
	if err != nil {
		lock.Unlock()
		return nil, err
	}
	lent := *g
	lent.Release = func(err error) {
		d.release(g, err)
		lock.Unlock()
	}
	return &lent, nil
}

// gateway is the kept gateway, or a new one.
func (d *Dialer) gateway(ctx context.Context) (*Gateway, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.kept != nil {
		return d.kept, nil
	}
	g, err := d.Open(ctx, d.pinned)
	if err != nil {
		return nil, err
	}
	p := g.Backend.Properties()
	if d.pinned == "" {
		d.pinned = p.Name
		d.logf("gateway: %s at %s%s", p.Name, p.Gateway, detected(g.Detection))
	}
	if !p.ListsFromState {
		d.kept = g
	}
	return g, nil
}

// detected is " (answered: upnp, pcp; why)", or "" when not detected.
func detected(det *Detection) string {
	if det == nil {
		return ""
	}
	return fmt.Sprintf(" (%s; %s)", det.Asking(), det.Why)
}

// release ends a pass on g: its warnings are reported, and a kept
// gateway that failed is dropped, so the next pass opens it afresh.
func (d *Dialer) release(g *Gateway, err error) {
	for _, w := range WarningsOf(g.Backend) {
		d.warnf("%s", w)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil && d.kept == g {
		d.kept = nil
	}
}

// Reset forgets the kept gateway and the pinned backend: the gateway
// settings changed, so the next pass opens (and detects) anew.
func (d *Dialer) Reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.kept, d.pinned = nil, ""
}

func (d *Dialer) logf(format string, a ...any) {
	if d.Logf != nil {
		d.Logf(format, a...)
	}
}

func (d *Dialer) warnf(format string, a ...any) {
	if d.Warnf != nil {
		d.Warnf(format, a...)
	}
}
