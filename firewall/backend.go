package firewall

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/portfwd/portfwd/forward"
)

// List implements forward.Backend: the DNAT rules in portfwd's chain, and
// the foreign ones in nat PREROUTING, read as mappings; with the IPv6
// side, the pinholes in portfwd's ip6tables chain. A mapping of portfwd's
// that would not forward (a jump or its ACCEPT rule is missing) is listed
// disabled, so Diff replaces it; one whose hairpin rules are all there is
// listed with Hairpin. It writes nothing.
func (f *Firewall) List(ctx context.Context) ([]forward.Mapping, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out, err := f.list4()
	if err != nil {
		return nil, fmt.Errorf("listing mappings: %w", err)
	}
	if f.t6 == nil {
		return out, nil
	}
	v6, err := f.t6.read()
	if err != nil {
		return nil, fmt.Errorf("listing pinholes: %w", err)
	}
	return append(out, pinholesListed(v6, f.wan)...), nil
}

// list4 reads the IPv4 forwards.
func (f *Firewall) list4() ([]forward.Mapping, error) {
	v, err := f.t4.read()
	if err != nil {
		return nil, err
	}
	lans, err := f.lanPrefixes()
	if err != nil {
		return nil, err
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
	if err := f.edit(ctx, m.Family, func(e editor) error { return e.add(ctx, m) }); err != nil {
		return forward.Mapping{}, fmt.Errorf("adding mapping %s: %w", m.Key, err)
	}
	return granted(m), nil
}

// granted is m as Add grants it: permanent and enabled, on its own port.
func granted(m forward.Mapping) forward.Mapping {
	m.Lease, m.Enabled, m.AnyExternal = 0, true, false
	return m
}

// Delete implements forward.Backend: it removes the rules of m.Key from
// portfwd's chains (DNAT, hairpin, ACCEPT; a pinhole's ACCEPT), and
// nothing else. Absent is not an error.
func (f *Firewall) Delete(ctx context.Context, m forward.Mapping) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.edit(ctx, m.Family, func(e editor) error { return e.deleteRules(ctx, m.Key, e.t.owned()) }); err != nil {
		return fmt.Errorf("deleting mapping %s: %w", m.Key, err)
	}
	return nil
}

// edit runs one edit on the current view of fam's tables, each write an
// iptables call of its own. A failed edit leaves the tables uncertain: the
// next one reads them again.
func (f *Firewall) edit(ctx context.Context, fam forward.Family, do func(editor) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := f.tablesOf(fam)
	if err != nil {
		return err
	}
	v, err := t.current()
	if err == nil {
		err = do(editor{f: f, t: t, v: v, w: direct{ipt: t.ipt, v: v}})
	}
	if err != nil {
		t.view = nil
	}
	return err
}

// Teardown removes everything portfwd wrote, in iptables and ip6tables:
// the jumps to its chains and the chains themselves, with their rules.
// Other rules are left alone. It reads the tables afresh rather than trust
// the views.
func (f *Firewall) Teardown(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.sides() {
		if err := f.teardownTables(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// teardownTables removes portfwd's hooks from one family's tables.
func (f *Firewall) teardownTables(ctx context.Context, t *tables) error {
	v, err := t.read()
	if err != nil {
		return fmt.Errorf("removing portfwd's chains: %w", err)
	}
	defer func() { t.view = nil }()
	for _, h := range slices.Backward(t.hooks()) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := teardown(t.ipt, v, h); err != nil {
			return fmt.Errorf("removing %s chain %s %s: %w", t.cmd(), h.table, h.chain, err)
		}
	}
	return nil
}

// teardown removes h's jumps and chain, as v says they are, with ipt.
func teardown(ipt ipt, v *view, h hook) error {
	for _, j := range v.jumps(h) {
		if err := ipt.Delete(h.table, h.builtin, j.args...); err != nil {
			return err
		}
	}
	if !v.exists(h.table, h.chain) {
		return nil
	}
	if err := ipt.ClearChain(h.table, h.chain); err != nil {
		return err
	}
	return ipt.DeleteChain(h.table, h.chain)
}
