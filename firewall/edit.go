package firewall

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/portfwd/portfwd/forward"
)

// writer makes the writes an editor decides on and records each in the
// editor's view: direct with one iptables call each (Add, Delete), or
// staged into one iptables-restore script (a batch, see restore.go).
type writer interface {
	newChain(table, chain string) error
	insertFirst(table, chain string, spec []string) error
	append(table, chain string, spec []string) error
	delete(table, chain string, spec []string) error
}

// direct is the writer of Add and Delete: each write an iptables call.
type direct struct {
	ipt ipt
	v   *view
}

func (d direct) newChain(table, chain string) error {
	if err := d.ipt.NewChain(table, chain); err != nil {
		return err
	}
	d.v.create(table, chain)
	return nil
}

func (d direct) insertFirst(table, chain string, spec []string) error {
	if err := d.ipt.Insert(table, chain, 1, spec...); err != nil {
		return err
	}
	d.v.add(table, chain, spec, true)
	return nil
}

func (d direct) append(table, chain string, spec []string) error {
	if err := d.ipt.Append(table, chain, spec...); err != nil {
		return err
	}
	d.v.add(table, chain, spec, false)
	return nil
}

func (d direct) delete(table, chain string, spec []string) error {
	if err := d.ipt.Delete(table, chain, spec...); err != nil {
		return err
	}
	d.v.remove(table, chain, spec)
	return nil
}

// editor decides the writes of one Add or Delete on one family's tables
// t from view v, as v says the tables are, and makes them through w. Add
// and Delete and a batch's staging share it, so both write the same rules
// in the same order.
type editor struct {
	f *Firewall
	t *tables
	v *view
	w writer
}

// add writes what m needs and is not there yet: an IPv4 forward, or an
// IPv6 pinhole (pinhole.go).
func (e editor) add(ctx context.Context, m forward.Mapping) error {
	if m.Family == forward.IPv6 {
		return e.addPinhole(ctx, m)
	}
	if err := validate(m); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := e.retag(ctx, m); err != nil {
		return err
	}
	if err := e.ensureHooks(ctx, hookForward, hookDNAT); err != nil {
		return err
	}
	// ACCEPT first, so the DNAT never sends packets FORWARD would drop.
	if err := e.ensureRule(rulesAccept, m.Key, acceptSpec(m)); err != nil {
		return err
	}
	if err := e.ensureRule(rulesDNAT, m.Key, dnatSpec(m)); err != nil {
		return err
	}
	if m.Hairpin {
		return e.addHairpin(ctx, m)
	}
	// Hairpin switched off, or never on: nothing to write then.
	return e.deleteRules(ctx, m.Key, []chainRules{rulesHairpin, rulesSNAT})
}

// retag checks who holds m's key. Someone else's rule that forwards
// elsewhere is a *forward.ConflictError; then takeOver decides on
// portfwd's own.
func (e editor) retag(ctx context.Context, m forward.Mapping) error {
	for _, o := range mappingsIn(e.v, "PREROUTING") {
		if o.Key == m.Key && !o.SameTarget(m) {
			return &forward.ConflictError{Want: m, Holder: o}
		}
	}
	return e.takeOver(ctx, m, mappingsIn(e.v, chainDNAT))
}

// takeOver checks portfwd's own mappings, own, on m's key: one of another
// rule is a *forward.ConflictError. Those with another tag that m adopts
// (an older portfwd's tag for the same rule, forward.Adopts), to the same
// place, are removed so that m's rules are written with its tag: in a
// batch both are one iptables-restore, so the port is never free.
func (e editor) takeOver(ctx context.Context, m forward.Mapping, own []forward.Mapping) error {
	for _, o := range own {
		switch {
		case o.Key != m.Key || o.SameTarget(m):
		case forward.Adopts(o, m) && o.InternalHost == m.InternalHost && o.InternalPort == m.InternalPort:
			return e.deleteRules(ctx, m.Key, e.t.owned())
		default:
			return &forward.ConflictError{Want: m, Holder: o}
		}
	}
	return nil
}

// addHairpin writes m's hairpin DNAT and, when the host shares a subnet
// with the router's LAN clients, its MASQUERADE.
func (e editor) addHairpin(ctx context.Context, m forward.Mapping) error {
	lans, err := e.f.lanPrefixes()
	if err != nil {
		return err
	}
	if err := e.ensureHooks(ctx, hookHairpin, hookSNAT); err != nil {
		return err
	}
	if lan, ok := subnetOf(lans, m.InternalHost); ok {
		if err := e.ensureRule(rulesSNAT, m.Key, snatSpec(m, lan)); err != nil {
			return err
		}
	}
	return e.ensureRule(rulesHairpin, m.Key, dnatSpec(m))
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
	return validateTag(m)
}

// validateTag refuses a mapping without portfwd's tag.
func validateTag(m forward.Mapping) error {
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
// adding 200 mappings writes 200 rules per chain and reads nothing. (In a
// batch, -C asks the live tables: a rule of k the view holds in another
// form than spec came from them, never from the batch.)
func (e editor) ensureRule(c chainRules, k forward.Key, spec []string) error {
	if e.v.has(c.table, c.chain, spec) {
		return nil
	}
	if slices.ContainsFunc(e.v.rules(c.table, c.chain), func(r rule) bool { got, ok := c.key(r); return ok && got == k }) {
		ok, err := e.t.ipt.Exists(c.table, c.chain, spec...)
		if err != nil {
			return fmt.Errorf("checking a rule in %s %s: %w", c.table, c.chain, err)
		}
		if ok {
			return nil
		}
	}
	if err := e.w.append(c.table, c.chain, spec); err != nil {
		return fmt.Errorf("appending to %s %s: %w", c.table, c.chain, err)
	}
	return nil
}

// ensureHooks creates portfwd's chains and their one jump each, inserted
// first in the built-in chain so a later DROP or REJECT does not hide it.
// A jump for another WAN interface (the uplink was renamed) is removed.
func (e editor) ensureHooks(ctx context.Context, hs ...hook) error {
	for _, h := range hs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := e.ensureHook(h); err != nil {
			return err
		}
	}
	return nil
}

func (e editor) ensureHook(h hook) error {
	if !e.v.exists(h.table, h.chain) {
		if err := e.w.newChain(h.table, h.chain); err != nil {
			return fmt.Errorf("creating chain %s %s: %w", h.table, h.chain, err)
		}
	}
	want := h.jump(e.f.wan)
	found := false
	for _, j := range e.v.jumps(h) {
		if slices.Equal(j.args, want) && !found {
			found = true
			continue
		}
		if err := e.w.delete(h.table, h.builtin, j.args); err != nil {
			return fmt.Errorf("removing a stale jump to %s: %w", h.chain, err)
		}
	}
	if found {
		return nil
	}
	if err := e.w.insertFirst(h.table, h.builtin, want); err != nil {
		return fmt.Errorf("adding the jump from %s %s to %s: %w", h.table, h.builtin, h.chain, err)
	}
	return nil
}

// deleteRules deletes the rules of key k from the chains of which, each by
// its own arguments as iptables printed them.
func (e editor) deleteRules(ctx context.Context, k forward.Key, which []chainRules) error {
	for _, c := range which {
		for _, r := range slices.Clone(e.v.rules(c.table, c.chain)) {
			if got, ok := c.key(r); !ok || got != k {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := e.w.delete(c.table, c.chain, r.args); err != nil {
				return fmt.Errorf("deleting from %s %s: %w", c.table, c.chain, err)
			}
		}
	}
	return nil
}
