package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/probe"
)

// access is how a command uses the gateway.
type access int

const (
	// accessRead: plan, status and check only look. The backend is
	// wrapped read-only, and a router that could not forward yet is a
	// warning.
	accessRead access = iota
	// accessChange: apply and the daemon make the gateway match.
	accessChange
	// accessRemove: down removes forwards, which needs no forwarding.
	accessRemove
)

// openFunc opens the gateway a config names: the seam every command's
// options carry, so tests can hand in a gateway of their own.
type openFunc func(ctx context.Context, cfg *forward.Config) (*forward.Gateway, error)

// opener is the openFunc of a one-shot command: the run lock is taken
// first and released with the gateway (its Done), after the backend's
// warnings are printed.
func (f *factory) opener(a access, enableForwarding bool) openFunc {
	return func(ctx context.Context, cfg *forward.Config) (*forward.Gateway, error) {
		lock, err := forward.LockRun(f.Settings.StateDir, forward.DefaultLockWait)
		if err != nil {
			return nil, err
		}
		g, err := f.open(ctx, cfg, a, enableForwarding, "")
		if err != nil {
			lock.Unlock()
			return nil, err
		}
		g.Release = func(error) {
			for _, w := range forward.WarningsOf(g.Backend) {
				f.warn(w)
			}
			lock.Unlock()
		}
		return g, nil
	}
}

// open opens the gateway cfg names (or backend, when not empty) without
// the run lock.
func (f *factory) open(ctx context.Context, cfg *forward.Config, a access, enableForwarding bool, backend string) (*forward.Gateway, error) {
	o := openOptions{Gateway: cfg.Gateway, StateDir: f.Settings.StateDir, Rediscover: f.Settings.Rediscover,
		Inspect: a != accessChange, EnableForwarding: enableForwarding, Warn: f.warn, Timeout: f.Settings.Timeout}
	if backend == "" {
		backend = cfg.Gateway.Backend
	}
	g, err := forward.Open(ctx, f.Openers(o), backend, cfg.Rules, f.memory(o))
	if err != nil {
		return nil, adviseAddress(err, cfg.Gateway)
	}
	if a == accessRead {
		g.Backend = forward.ReadOnly(g.Backend)
	}
	f.warnUnused(cfg, g.Backend.Properties())
	if a != accessRemove {
		f.warnHosts(cfg, g.Backend)
	}
	return g, nil
}

// warnHosts says, before any change, which rules forward to a host the
// gateway cannot reach, when the backend can tell (HostChecker).
func (f *factory) warnHosts(cfg *forward.Config, b forward.Backend) {
	hc, ok := forward.As[forward.HostChecker](b)
	if !ok {
		return
	}
	for _, r := range cfg.Rules {
		if p := hc.HostProblem(r.InternalAddr); p != "" {
			f.warn(fmt.Sprintf("rule %q forwards to %s: %s; %s", r.Name, r.InternalHost, p, probe.FixInternalHost))
		}
	}
}

// gatewayRun is what every command that talks to a gateway shares: where
// it prints, and how it reads its config and opens the gateway — the
// seams a test replaces.
type gatewayRun struct {
	Out    *printer
	Config func(ctx context.Context) (*forward.Config, error)
	Open   openFunc
	// Docker, when on (--docker), runs fn a second time, on the same
	// gateway, for the containers' config (dockerFlags.once).
	Docker *dockerFlags
}

// gatewayRun is the gatewayRun of a command that uses the gateway as a
// says, reading its config with config.
func (f *factory) gatewayRun(a access, enableForwarding bool, config func(context.Context) (*forward.Config, error)) gatewayRun {
	return gatewayRun{Out: f.out, Config: config, Open: f.opener(a, enableForwarding)}
}

// run reads the config, opens its gateway and runs fn on both, then
// releases the gateway. No deadline bounds the whole run, only Ctrl-C
// (ctx): --timeout bounds each request to the gateway on its own (the
// backends apply it, openOptions.Timeout), and every other wait has a
// bound of its own (the run lock, each probe, each host name lookup), so
// a long apply on a slow router never loses the rules after a slow one.
func (r gatewayRun) run(ctx context.Context, fn func(context.Context, *forward.Config, *forward.Gateway) error) error {
	cfg, err := r.Config(ctx)
	if err != nil {
		return err
	}
	g, err := r.Open(ctx, cfg)
	if err != nil {
		return err
	}
	err = fn(ctx, cfg, g)
	if r.Docker != nil && r.Docker.On {
		err = r.Docker.once(ctx, r.Out, cfg, g, fn, err)
	}
	g.Done(err)
	return err
}

// warn prints one warning on stderr, made printable: warnings quote
// what gateways said.
func (f *factory) warn(w string) { fmt.Fprintln(f.IO.ErrOut, "warning:", forward.PrintableLines(w)) }

// warnUnused says when the config asks for what only a backend on the
// router itself does, on another backend.
func (f *factory) warnUnused(cfg *forward.Config, p forward.Properties) {
	if p.Local {
		return
	}
	if cfg.Gateway.WANInterface != "" {
		f.warn(fmt.Sprintf("gateway.wan_interface is for the iptables backend (portfwd on the router itself); %s ignores it", p.Name))
	}
	if !p.Hairpin && (cfg.Gateway.Hairpin || slices.ContainsFunc(cfg.Rules, func(r forward.Rule) bool { return r.Hairpin })) {
		f.warn(fmt.Sprintf("hairpin is written by the iptables backend only; over %s, whether LAN clients can use the public address is a setting of the router (often called NAT loopback)", p.Name))
	}
}

// adviseAddress adds to an error that found no gateway the advice to name
// the router, when it was not named (with gateway.address or --gateway
// given, that advice would only send the user in a circle) and the error
// does not give it already (no default route).
func adviseAddress(err error, gw forward.GatewaySettings) error {
	if !errors.Is(err, forward.ErrNoGateway) || gw.Address != "" || errors.Is(err, context.Canceled) ||
		strings.Contains(err.Error(), "gateway.address") {
		return err
	}
	return fmt.Errorf("%w; if the router is not this host's default gateway, set gateway.address (or --gateway) to its LAN address", err)
}
