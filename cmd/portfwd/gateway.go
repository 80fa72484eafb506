package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/upnp"
)

// session is a connected gateway and the LAN address this host uses to
// reach it ("self" in the config).
type session struct {
	backend forward.Backend
	self    netip.Addr
}

// connect discovers the gateway named by gw and returns a backend for it.
// This is the one place the CLI names concrete backends.
func connect(ctx context.Context, gw forward.Gateway, rediscover bool) (*session, error) {
	switch gw.Backend {
	case "", "auto", "upnp":
		return connectUPnP(ctx, gw, rediscover)
	}
	return nil, fmt.Errorf("gateway.backend %q is not available in this version of portfwd; use auto or upnp", gw.Backend)
}

func connectUPnP(ctx context.Context, gw forward.Gateway, rediscover bool) (*session, error) {
	opts := upnp.DiscoverOptions{Refresh: rediscover}
	// Remember the gateway between runs, so a re-apply skips discovery;
	// without a cache directory every run discovers.
	if dir, err := os.UserCacheDir(); err == nil {
		opts.CacheDir = filepath.Join(dir, "portfwd")
	}
	if gw.Address != "" {
		addr, err := netip.ParseAddr(gw.Address)
		if err != nil {
			return nil, fmt.Errorf("gateway.address %q: %w", gw.Address, err)
		}
		opts.Gateway = addr
	}
	igd, err := upnp.Discover(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &session{backend: igd, self: igd.LocalAddr()}, nil
}

// hosts are the internal hosts whose tagged mappings cfg owns: this host,
// and every address a rule forwards to.
func hosts(cfg *forward.Config, self netip.Addr) []netip.Addr {
	out := []netip.Addr{self}
	for _, r := range cfg.Rules {
		if r.InternalAddr.IsValid() {
			out = append(out, r.InternalAddr)
		}
	}
	return out
}

// reconcilePlan reads the gateway and plans the changes that make it match
// cfg (or, for down, match an empty config).
func reconcilePlan(ctx context.Context, s *session, desired []forward.Mapping, cfg *forward.Config, prune bool) (forward.Plan, []forward.Mapping, error) {
	observed, err := s.backend.List(ctx)
	if err != nil {
		return forward.Plan{}, nil, fmt.Errorf("listing the gateway's mappings: %w", err)
	}
	plan := forward.Diff(desired, observed, forward.DiffOptions{Prune: prune, Hosts: hosts(cfg, s.self)})
	return plan, observed, nil
}
