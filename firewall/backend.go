package firewall

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/portfwd/portfwd/forward"
)

// List implements forward.Backend: the DNAT rules in portfwd's chain, and
// the foreign ones in nat PREROUTING, read as mappings. It writes nothing.
func (f *Firewall) List(ctx context.Context) ([]forward.Mapping, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ms, err := f.list()
	if err != nil {
		return nil, fmt.Errorf("listing mappings: %w", err)
	}
	return ms, nil
}

func (f *Firewall) list() ([]forward.Mapping, error) {
	var out []forward.Mapping
	for _, chain := range []string{"PREROUTING", chainDNAT} {
		rules, err := f.rules("nat", chain)
		if err != nil {
			return nil, err
		}
		for _, r := range rules {
			if m, ok := r.mapping(); ok {
				out = append(out, m)
			}
		}
	}
	return out, nil
}

// rules lists a chain's rules; a chain of portfwd's that does not exist
// has none.
func (f *Firewall) rules(table, chain string) ([]rule, error) {
	if chain == chainDNAT || chain == chainForward {
		ok, err := f.ipt.ChainExists(table, chain)
		if err != nil || !ok {
			return nil, err
		}
	}
	lines, err := f.ipt.List(table, chain)
	if err != nil {
		return nil, fmt.Errorf("iptables -t %s -S %s: %w", table, chain, err)
	}
	var out []rule
	for _, l := range lines {
		if r, err := parseRule(l); err == nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// Add implements forward.Backend. A rule that is already there is not
// written again; any other mapping on m.Key, in portfwd's chain or in nat
// PREROUTING, is a *forward.ConflictError.
func (f *Firewall) Add(ctx context.Context, m forward.Mapping) (forward.Mapping, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.add(ctx, m); err != nil {
		return forward.Mapping{}, fmt.Errorf("adding mapping %s: %w", m.Key, err)
	}
	m.Lease, m.Enabled, m.AnyExternal = 0, true, false
	return m, nil
}

func (f *Firewall) add(ctx context.Context, m forward.Mapping) error {
	if err := validate(m); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	observed, err := f.list()
	if err != nil {
		return err
	}
	for _, o := range observed {
		if o.Key == m.Key && !sameTarget(o, m) {
			return &forward.ConflictError{Want: m, Holder: o}
		}
	}
	if err := f.ensureHooks(ctx); err != nil {
		return err
	}
	// ACCEPT first, so the DNAT never sends packets FORWARD would drop.
	if err := f.ensureRule("filter", chainForward, acceptSpec(m)); err != nil {
		return err
	}
	return f.ensureRule("nat", chainDNAT, dnatSpec(m))
}

// validate refuses what iptables rules here cannot say.
func validate(m forward.Mapping) error {
	if _, err := forward.ParseProtocol(string(m.Protocol)); err != nil {
		return err
	}
	if !m.InternalHost.Is4() || m.ExternalPort == 0 || m.InternalPort == 0 {
		return fmt.Errorf("%v: the iptables backend forwards to an IPv4 host and port", m)
	}
	if m.Description == "" {
		return errors.New("no description: portfwd tags every rule it writes (forward.Tag)")
	}
	return nil
}

func sameTarget(a, b forward.Mapping) bool {
	return a.InternalHost == b.InternalHost && a.InternalPort == b.InternalPort && a.Description == b.Description
}

// ensureRule appends spec to chain unless iptables -C finds it.
func (f *Firewall) ensureRule(table, chain string, spec []string) error {
	ok, err := f.ipt.Exists(table, chain, spec...)
	if err != nil {
		return fmt.Errorf("checking a rule in %s %s: %w", table, chain, err)
	}
	if ok {
		return nil
	}
	if err := f.ipt.Append(table, chain, spec...); err != nil {
		return fmt.Errorf("appending to %s %s: %w", table, chain, err)
	}
	return nil
}

// ensureHooks creates portfwd's chains and their one jump each, inserted
// first in the built-in chain so a later DROP or REJECT does not hide it.
// A jump for another WAN interface (the uplink was renamed) is removed.
func (f *Firewall) ensureHooks(ctx context.Context) error {
	for _, h := range hooks {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := f.ensureHook(h); err != nil {
			return err
		}
	}
	return nil
}

func (f *Firewall) ensureHook(h hook) error {
	ok, err := f.ipt.ChainExists(h.table, h.chain)
	if err != nil {
		return fmt.Errorf("checking chain %s %s: %w", h.table, h.chain, err)
	}
	if !ok {
		if err := f.ipt.NewChain(h.table, h.chain); err != nil {
			return fmt.Errorf("creating chain %s %s: %w", h.table, h.chain, err)
		}
	}
	want := h.jump(f.wan)
	found := false
	jumps, err := f.jumps(h)
	if err != nil {
		return err
	}
	for _, j := range jumps {
		if slices.Equal(j.args, want) && !found {
			found = true
			continue
		}
		if err := f.ipt.Delete(h.table, h.builtin, j.args...); err != nil {
			return fmt.Errorf("removing a stale jump to %s: %w", h.chain, err)
		}
	}
	if found {
		return nil
	}
	if err := f.ipt.Insert(h.table, h.builtin, 1, want...); err != nil {
		return fmt.Errorf("adding the jump from %s %s to %s: %w", h.table, h.builtin, h.chain, err)
	}
	return nil
}

// jumps are the rules in h's built-in chain that jump to h's chain.
func (f *Firewall) jumps(h hook) ([]rule, error) {
	rules, err := f.rules(h.table, h.builtin)
	if err != nil {
		return nil, err
	}
	var out []rule
	for _, r := range rules {
		if r.target() == h.chain {
			out = append(out, r)
		}
	}
	return out, nil
}

// Delete implements forward.Backend: it removes the DNAT and ACCEPT rules
// on m.Key from portfwd's chains, and nothing else. Absent is not an error.
func (f *Firewall) Delete(ctx context.Context, m forward.Mapping) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.delete(ctx, m.Key); err != nil {
		return fmt.Errorf("deleting mapping %s: %w", m.Key, err)
	}
	return nil
}

func (f *Firewall) delete(ctx context.Context, k forward.Key) error {
	// DNAT first, so no packet is rewritten toward a closed FORWARD.
	dnat := func(r rule) bool { m, ok := r.mapping(); return ok && m.Key == k }
	if err := f.deleteWhere(ctx, "nat", chainDNAT, dnat); err != nil {
		return err
	}
	accept := func(r rule) bool { got, ok := r.acceptKey(); return ok && got == k }
	return f.deleteWhere(ctx, "filter", chainForward, accept)
}

// deleteWhere deletes the rules of chain that match, each by its own spec
// as iptables printed it.
func (f *Firewall) deleteWhere(ctx context.Context, table, chain string, match func(rule) bool) error {
	rules, err := f.rules(table, chain)
	if err != nil {
		return err
	}
	for _, r := range rules {
		if !match(r) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := f.ipt.Delete(table, chain, r.args...); err != nil {
			return fmt.Errorf("deleting from %s %s: %w", table, chain, err)
		}
	}
	return nil
}

// Teardown removes everything portfwd wrote: the jumps to its chains and
// the chains themselves, with their rules. Other rules are left alone.
func (f *Firewall) Teardown(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range slices.Backward(hooks) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := f.teardown(h); err != nil {
			return fmt.Errorf("removing chain %s %s: %w", h.table, h.chain, err)
		}
	}
	return nil
}

func (f *Firewall) teardown(h hook) error {
	jumps, err := f.jumps(h)
	if err != nil {
		return err
	}
	for _, j := range jumps {
		if err := f.ipt.Delete(h.table, h.builtin, j.args...); err != nil {
			return err
		}
	}
	ok, err := f.ipt.ChainExists(h.table, h.chain)
	if err != nil || !ok {
		return err
	}
	if err := f.ipt.ClearChain(h.table, h.chain); err != nil {
		return err
	}
	return f.ipt.DeleteChain(h.table, h.chain)
}
