package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/portfwd/portfwd/firewall"
	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/upnp"
)

// session is a connected gateway and the LAN address this host uses to
// reach it ("self" in the config).
type session struct {
	backend forward.Backend
	self    netip.Addr
	// answered lists the protocols the gateway answered during auto
	// detection, and why says why backend was chosen; both are empty when
	// the backend was forced.
	answered []string
	why      string
	state    *forward.State // open for the backends that need it
	warnings func() []string
}

// close releases the state file's lock.
func (s *session) close() {
	if s.state != nil {
		s.state.Close()
	}
}

// connect returns a backend for cfg's gateway: the one gateway.backend
// forces, or the best of those that answer (auto). This is the one place
// the CLI names concrete backends.
func (g *globals) connect(ctx context.Context, cfg *forward.Config) (*session, error) {
	s, err := g.open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	g.warnUnused(cfg, s.backend.Properties())
	return s, nil
}

func (g *globals) open(ctx context.Context, cfg *forward.Config) (*session, error) {
	switch cfg.Gateway.Backend {
	case "", "auto":
		return g.auto(ctx, cfg)
	case "upnp":
		return g.openUPnP(ctx, cfg.Gateway)
	case "natpmp":
		return g.withState(ctx, cfg.Gateway, g.openNATPMP)
	case "pcp":
		return g.withState(ctx, cfg.Gateway, g.openPCP)
	case "iptables":
		return g.withState(ctx, cfg.Gateway, g.openIptables)
	}
	return nil, fmt.Errorf("gateway.backend %q is not available in this version of portfwd; use auto, upnp, natpmp, pcp or iptables", cfg.Gateway.Backend)
}

// warnUnused says when the config asks for what only the iptables
// backend does, on another backend.
func (g *globals) warnUnused(cfg *forward.Config, p forward.Properties) {
	if p.Local {
		return
	}
	if cfg.Gateway.WANInterface != "" {
		fmt.Fprintf(g.io.ErrOut, "warning: gateway.wan_interface is for the iptables backend (portfwd on the router itself); %s ignores it\n", p.Name)
	}
	if !p.Hairpin && (cfg.Gateway.Hairpin || slices.ContainsFunc(cfg.Rules, func(r forward.Rule) bool { return r.Hairpin })) {
		fmt.Fprintf(g.io.ErrOut, "warning: hairpin is written by the iptables backend only; over %s, whether LAN clients can use the public address is a setting of the router (often called NAT loopback)\n", p.Name)
	}
}

// openIptables writes the forwards with iptables on this machine, the
// router. The state file is not needed to list, but its lock keeps two
// runs from writing the tables at once.
func (g *globals) openIptables(_ context.Context, gw forward.GatewaySettings, st *forward.State) (*session, error) {
	f, err := firewall.New(firewall.Options{WANInterface: gw.WANInterface, EnableForwarding: g.enableForwarding, Inspect: g.inspect})
	if err != nil {
		return nil, err
	}
	return &session{backend: f, self: f.LocalAddr(), state: st, warnings: f.Warnings}, nil
}

func (g *globals) openUPnP(ctx context.Context, gw forward.GatewaySettings) (*session, error) {
	opts := upnp.DiscoverOptions{Refresh: g.rediscover}
	// Remember the gateway between runs, so a re-apply skips discovery;
	// without a cache directory every run discovers.
	if dir, err := os.UserCacheDir(); err == nil {
		opts.CacheDir = filepath.Join(dir, "portfwd")
	}
	addr, err := gatewayAddress(gw)
	if err != nil {
		return nil, err
	}
	opts.Gateway = addr
	igd, err := upnp.Discover(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &session{backend: igd, self: igd.LocalAddr()}, nil
}

// gatewayAddress is gateway.address, or the zero Addr for "find it".
func gatewayAddress(gw forward.GatewaySettings) (netip.Addr, error) {
	if gw.Address == "" {
		return netip.Addr{}, nil
	}
	addr, err := netip.ParseAddr(gw.Address)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("gateway.address %q: %w", gw.Address, err)
	}
	return addr, nil
}

// withState opens the state file for a protocol that cannot list its
// mappings, then the backend on it.
func (g *globals) withState(ctx context.Context, gw forward.GatewaySettings, open func(context.Context, forward.GatewaySettings, *forward.State) (*session, error)) (*session, error) {
	st, err := g.openState()
	if err != nil {
		return nil, err
	}
	s, err := open(ctx, gw, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	return s, nil
}

// stateLockWait is how long a run waits for another portfwd to finish
// with the state file.
const stateLockWait = 10 * time.Second

func (g *globals) openState() (*forward.State, error) {
	dir := g.v.GetString("state_dir")
	if dir == "" {
		dir = forward.DefaultStateDir()
	}
	st, err := forward.OpenState(dir, stateLockWait)
	if err != nil {
		return nil, err
	}
	for _, w := range st.Warnings {
		fmt.Fprintln(g.io.ErrOut, "warning:", w)
	}
	return st, nil
}

// stateBackend is a backend that lists from the state file: NAT-PMP, PCP.
type stateBackend interface {
	forward.Backend
	LocalAddr() netip.Addr
	Warnings() []string
}

// openNATPMP connects over NAT-PMP (RFC 6886).
func (g *globals) openNATPMP(ctx context.Context, gw forward.GatewaySettings, st *forward.State) (*session, error) {
	return g.openStateBackend(ctx, gw, st, func(addr netip.Addr) (stateBackend, error) {
		return upnp.NewNATPMP(addr, st, upnp.NATPMPOptions{})
	})
}

// openPCP connects over PCP (RFC 6887).
func (g *globals) openPCP(ctx context.Context, gw forward.GatewaySettings, st *forward.State) (*session, error) {
	return g.openStateBackend(ctx, gw, st, func(addr netip.Addr) (stateBackend, error) {
		return upnp.NewPCP(addr, st, upnp.PCPOptions{})
	})
}

// openStateBackend makes the backend for the gateway and proves it speaks
// the protocol by asking its external address (NAT-PMP's public address
// request, PCP's ANNOUNCE): a refusal or "no public address" is an answer
// too, only silence is not.
func (g *globals) openStateBackend(ctx context.Context, gw forward.GatewaySettings, st *forward.State, newBackend func(netip.Addr) (stateBackend, error)) (*session, error) {
	addr, err := g.gatewayFor(gw)
	if err != nil {
		return nil, err
	}
	b, err := newBackend(addr)
	if err != nil {
		return nil, err
	}
	if _, err := b.ExternalAddr(ctx); err != nil && isSilence(err) {
		return nil, err
	}
	return &session{backend: b, self: b.LocalAddr(), state: st, warnings: b.Warnings}, nil
}

// gatewayFor is gateway.address, or the default gateway.
func (g *globals) gatewayFor(gw forward.GatewaySettings) (netip.Addr, error) {
	given, err := gatewayAddress(gw)
	if err != nil {
		return netip.Addr{}, err
	}
	addr, err := upnp.GatewayAddr(given)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("finding the default gateway: %v; set gateway.address to the router's LAN address: %w", err, forward.ErrNoGateway)
	}
	return addr, nil
}

// reconcilePlan reads the gateway and plans the changes that make it match
// cfg (or, for down, match an empty config).
func reconcilePlan(ctx context.Context, s *session, desired []forward.Mapping, cfg *forward.Config, prune bool) (forward.Plan, []forward.Mapping, error) {
	observed, err := s.backend.List(ctx)
	if err != nil {
		return forward.Plan{}, nil, fmt.Errorf("listing the gateway's mappings: %w", err)
	}
	opts := cfg.Ownership(s.self, s.backend.Properties())
	opts.Prune = prune
	plan := forward.Diff(desired, observed, opts)
	return plan, observed, nil
}
