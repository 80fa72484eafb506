package forwardtest

import (
	"context"
	"net/netip"
	"slices"
	"sync"

	"github.com/portfwd/portfwd/forward"
)

// Memory is an in-memory gateway that behaves like a UPnP IGD in secure
// mode: mappings are keyed by protocol and external port, a key held by
// another client is a conflict, and (when Secure is set) mappings may only
// point at Self.
type Memory struct {
	Self     netip.Addr // the host portfwd runs on
	External netip.Addr // the WAN address reported
	Secure   bool
	// Self6 is the host's IPv6 address; when set the gateway opens IPv6
	// pinholes too (Properties.IPv6), in secure mode only to Self6.
	Self6 netip.Addr

	mu       sync.Mutex
	mappings map[forward.Key]forward.Mapping
	adds     int
	deletes  int
}

var _ forward.Backend = (*Memory)(nil)

// NewMemory returns an empty secure-mode gateway for a LAN host self.
func NewMemory(self netip.Addr) *Memory {
	return &Memory{Self: self, External: netip.MustParseAddr("203.0.113.7"), Secure: true,
		mappings: map[forward.Key]forward.Mapping{}}
}

// Properties implements forward.Backend. In secure mode it maps for
// other hosts as a UPnP router does: only if allowed, which it is not.
func (g *Memory) Properties() forward.Properties {
	third := forward.ThirdPartyYes
	if g.Secure {
		third = forward.ThirdPartyIfAllowed
	}
	return forward.Properties{Name: "memory", Gateway: "memory", Protocols: []string{"memory"},
		PermanentLeases: true, ThirdParty: third, IPv6: g.Self6.IsValid()}
}

// LocalAddr implements forward.Locator: Self.
func (g *Memory) LocalAddr() netip.Addr { return g.Self }

// LocalAddr6 implements forward.Locator6: Self6.
func (g *Memory) LocalAddr6() forward.SelfIPv6 {
	if !g.Self6.IsValid() {
		return forward.SelfIPv6{Why: "the in-memory gateway has no IPv6"}
	}
	return forward.SelfIPv6{Addr: g.Self6, Interface: "mem0", Why: "the in-memory gateway's IPv6 address for this host"}
}

// List implements forward.Backend.
func (g *Memory) List(ctx context.Context) ([]forward.Mapping, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]forward.Mapping, 0, len(g.mappings))
	for _, m := range g.mappings {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b forward.Mapping) int { return a.Key.Compare(b.Key) })
	return out, nil
}

// Add implements forward.Backend.
func (g *Memory) Add(ctx context.Context, m forward.Mapping) (forward.Mapping, error) {
	if err := ctx.Err(); err != nil {
		return forward.Mapping{}, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.adds++
	self := g.Self
	if m.Family == forward.IPv6 {
		self = g.Self6
	}
	if g.Secure && m.InternalHost != self {
		return forward.Mapping{}, forward.ErrNotAuthorized
	}
	if old, ok := g.mappings[m.Key]; ok && (old.InternalHost != m.InternalHost || old.Description != m.Description && !forward.Adopts(old, m)) {
		return forward.Mapping{}, &forward.ConflictError{Want: m, Holder: old}
	}
	g.mappings[m.Key] = m
	return m, nil
}

// Delete implements forward.Backend.
func (g *Memory) Delete(ctx context.Context, m forward.Mapping) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deletes++
	delete(g.mappings, m.Key)
	return nil
}

// ExternalAddr implements forward.Backend.
func (g *Memory) ExternalAddr(context.Context) (netip.Addr, error) { return g.External, nil }

// Put installs m as if another client had made it, bypassing the rules.
func (g *Memory) Put(m forward.Mapping) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mappings[m.Key] = m
}

// Calls reports how many Add and Delete calls the gateway has served.
func (g *Memory) Calls() (adds, deletes int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.adds, g.deletes
}
