package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/portfwd/portfwd/forward"
)

// List implements forward.Backend: the DNAT rules in portfwd's chain, and
// the foreign ones in nat PREROUTING, read as mappings. A mapping of
// portfwd's that would not forward (a jump or its ACCEPT rule is missing)
// is listed disabled, so Diff replaces it; one whose hairpin rules are all
// there is listed with Hairpin. It writes nothing.
func (f *Firewall) List(ctx context.Context) ([]forward.Mapping, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v, err := f.read()
	if err != nil {
		return nil, fmt.Errorf("listing mappings: %w", err)
	}
	lans, err := f.lanPrefixes()
	if err != nil {
		return nil, fmt.Errorf("listing mappings: %w", err)
	}
	out := mappingsIn(v, "PREROUTING")
	live := v.hooked(hookDNAT, f.wan) && v.hooked(hookForward, f.wan)
	for _, m := range mappingsIn(v, chainDNAT) {
		m.Enabled = live && v.has("filter", chainForward, acceptSpec(m))
		m.Hairpin = f.hairpinned(v, m, lans)
		out = append(out, m)
	}
	return out, nil
}

// read reads the view afresh and keeps it for the writes that follow.
func (f *Firewall) read() (*view, error) {
	f.view = nil
	v, err := readView(f.ipt)
	if err != nil {
		return nil, err
	}
	f.view = v
	return v, nil
}

// current is the view the last List read, kept current since, or a fresh
// one.
func (f *Firewall) current() (*view, error) {
	if f.view != nil {
		return f.view, nil
	}
	return f.read()
}

// mappingsIn reads the DNAT rules of a nat chain as mappings: nat
// PREROUTING holds other programs', PORTFWD-PREROUTING portfwd's own.
func mappingsIn(v *view, chain string) []forward.Mapping {
	var out []forward.Mapping
	for _, r := range v.rules("nat", chain) {
		if m, ok := r.mapping(); ok {
			out = append(out, m)
		}
	}
	return out
}

// hairpinned reports whether LAN clients reach m through the public
// address: the hairpin jump and DNAT, and the MASQUERADE when the host
// shares a subnet with clients.
func (f *Firewall) hairpinned(v *view, m forward.Mapping, lans []netip.Prefix) bool {
	if !v.hooked(hookHairpin, f.wan) || !v.has("nat", chainHairpin, dnatSpec(m)) {
		return false
	}
	lan, ok := subnetOf(lans, m.InternalHost)
	return !ok || v.hooked(hookSNAT, f.wan) && v.has("nat", chainSNAT, snatSpec(m, lan))
}

// Add implements forward.Backend. A rule that is already there is not
// written again; any other mapping on m.Key, in portfwd's chain or in nat
// PREROUTING, is a *forward.ConflictError.
func (f *Firewall) Add(ctx context.Context, m forward.Mapping) (forward.Mapping, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.add(ctx, m); err != nil {
		f.view = nil // a failed write leaves the tables uncertain: read them again
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
	v, err := f.current()
	if err != nil {
		return err
	}
	for _, o := range append(mappingsIn(v, "PREROUTING"), mappingsIn(v, chainDNAT)...) {
		if o.Key == m.Key && !o.SameTarget(m) {
			return &forward.ConflictError{Want: m, Holder: o}
		}
	}
	if err := f.ensureHooks(ctx, v, hookForward, hookDNAT); err != nil {
		return err
	}
	// ACCEPT first, so the DNAT never sends packets FORWARD would drop.
	if err := f.ensureRule(v, rulesAccept, m.Key, acceptSpec(m)); err != nil {
		return err
	}
	if err := f.ensureRule(v, rulesDNAT, m.Key, dnatSpec(m)); err != nil {
		return err
	}
	if m.Hairpin {
		return f.addHairpin(ctx, v, m)
	}
	// Hairpin switched off, or never on: nothing to write then.
	return f.deleteRules(ctx, v, m.Key, []chainRules{rulesHairpin, rulesSNAT})
}

// addHairpin writes m's hairpin DNAT and, when the host shares a subnet
// with the router's LAN clients, its MASQUERADE.
func (f *Firewall) addHairpin(ctx context.Context, v *view, m forward.Mapping) error {
	lans, err := f.lanPrefixes()
	if err != nil {
		return err
	}
	if err := f.ensureHooks(ctx, v, hookHairpin, hookSNAT); err != nil {
		return err
	}
	if lan, ok := subnetOf(lans, m.InternalHost); ok {
		if err := f.ensureRule(v, rulesSNAT, m.Key, snatSpec(m, lan)); err != nil {
			return err
		}
	}
	return f.ensureRule(v, rulesHairpin, m.Key, dnatSpec(m))
}

// validate refuses what iptables rules here cannot say.
func validate(m forward.Mapping) error {
	if _, err := forward.ParseProtocol(string(m.Protocol)); err != nil {
		return err
	}
	if !m.InternalHost.Is4() {
		return fmt.Errorf("%v: the iptables backend forwards to an IPv4 host; for internal_host: self the router needs an IPv4 address on its LAN side", m)
	}
	if m.ExternalPort == 0 || m.InternalPort == 0 {
		return fmt.Errorf("%v: the iptables backend forwards one port to one port", m)
	}
	if m.Description == "" {
		return errors.New("no description: portfwd tags every rule it writes (forward.Tag)")
	}
	return nil
}

// ensureRule appends spec, a rule of key k, to c's chain unless it is
// there. When the view holds another rule of k there, iptables -C decides:
// the view holds rules as this iptables prints them, which may differ from
// how portfwd wrote them (another iptables version), and a rule must never
// be appended twice. A key with no rule at all needs no check, so a pass
// adding 200 mappings writes 200 rules per chain and reads nothing.
func (f *Firewall) ensureRule(v *view, c chainRules, k forward.Key, spec []string) error {
	if v.has(c.table, c.chain, spec) {
		return nil
	}
	if slices.ContainsFunc(v.rules(c.table, c.chain), func(r rule) bool { got, ok := c.key(r); return ok && got == k }) {
		ok, err := f.ipt.Exists(c.table, c.chain, spec...)
		if err != nil {
			return fmt.Errorf("checking a rule in %s %s: %w", c.table, c.chain, err)
		}
		if ok {
			return nil
		}
	}
	if err := f.ipt.Append(c.table, c.chain, spec...); err != nil {
		return fmt.Errorf("appending to %s %s: %w", c.table, c.chain, err)
	}
	v.add(c.table, c.chain, spec, false)
	return nil
}

// ensureHooks creates portfwd's chains and their one jump each, inserted
// first in the built-in chain so a later DROP or REJECT does not hide it.
// A jump for another WAN interface (the uplink was renamed) is removed.
func (f *Firewall) ensureHooks(ctx context.Context, v *view, hs ...hook) error {
	for _, h := range hs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := f.ensureHook(v, h); err != nil {
			return err
		}
	}
	return nil
}

func (f *Firewall) ensureHook(v *view, h hook) error {
	if !v.exists(h.table, h.chain) {
		if err := f.ipt.NewChain(h.table, h.chain); err != nil {
			return fmt.Errorf("creating chain %s %s: %w", h.table, h.chain, err)
		}
		v.create(h.table, h.chain)
	}
	want := h.jump(f.wan)
	found := false
	for _, j := range v.jumps(h) {
		if slices.Equal(j.args, want) && !found {
			found = true
			continue
		}
		if err := f.ipt.Delete(h.table, h.builtin, j.args...); err != nil {
			return fmt.Errorf("removing a stale jump to %s: %w", h.chain, err)
		}
		v.remove(h.table, h.builtin, j.args)
	}
	if found {
		return nil
	}
	if err := f.ipt.Insert(h.table, h.builtin, 1, want...); err != nil {
		return fmt.Errorf("adding the jump from %s %s to %s: %w", h.table, h.builtin, h.chain, err)
	}
	v.add(h.table, h.builtin, want, true)
	return nil
}

// Delete implements forward.Backend: it removes the rules of m.Key from
// portfwd's chains (DNAT, hairpin, ACCEPT), and nothing else. Absent is
// not an error.
func (f *Firewall) Delete(ctx context.Context, m forward.Mapping) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("deleting mapping %s: %w", m.Key, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v, err := f.current()
	if err == nil {
		err = f.deleteRules(ctx, v, m.Key, owned)
	}
	if err != nil {
		f.view = nil
		return fmt.Errorf("deleting mapping %s: %w", m.Key, err)
	}
	return nil
}

// deleteRules deletes the rules of key k from the chains of which, each by
// its own arguments as iptables printed them.
func (f *Firewall) deleteRules(ctx context.Context, v *view, k forward.Key, which []chainRules) error {
	for _, c := range which {
		for _, r := range slices.Clone(v.rules(c.table, c.chain)) {
			if got, ok := c.key(r); !ok || got != k {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := f.ipt.Delete(c.table, c.chain, r.args...); err != nil {
				return fmt.Errorf("deleting from %s %s: %w", c.table, c.chain, err)
			}
			v.remove(c.table, c.chain, r.args)
		}
	}
	return nil
}

// Teardown removes everything portfwd wrote: the jumps to its chains and
// the chains themselves, with their rules. Other rules are left alone. It
// reads the tables afresh rather than trust the view.
func (f *Firewall) Teardown(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, err := f.read()
	if err != nil {
		return fmt.Errorf("removing portfwd's chains: %w", err)
	}
	defer func() { f.view = nil }()
	for _, h := range slices.Backward(hooks) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := f.teardown(v, h); err != nil {
			return fmt.Errorf("removing chain %s %s: %w", h.table, h.chain, err)
		}
	}
	return nil
}

func (f *Firewall) teardown(v *view, h hook) error {
	for _, j := range v.jumps(h) {
		if err := f.ipt.Delete(h.table, h.builtin, j.args...); err != nil {
			return err
		}
	}
	if !v.exists(h.table, h.chain) {
		return nil
	}
	if err := f.ipt.ClearChain(h.table, h.chain); err != nil {
		return err
	}
	return f.ipt.DeleteChain(h.table, h.chain)
}
