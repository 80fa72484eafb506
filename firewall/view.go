package firewall

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// view is the part of the ruleset the backend works on: the built-in
// chains its jumps live in and its own chains, as `iptables -S` printed
// them. List reads it afresh; Add and Delete then work from it and keep it
// current with their own writes, so a pass that lists once and adds 200
// mappings does not read the tables 200 times. Runs of portfwd are
// serialised by the state file's lock; other programs' rules are read
// again at every List.
type view struct {
	chains map[string][]rule // "table/chain" -> rules; a chain that does not exist has no key
}

// watch is a table and the chains of it a view reads.
type watch struct {
	table  string
	chains []string
}

// watched are the chains an IPv4 view reads, by table; watched6 an IPv6
// one's (no NAT there).
var (
	watched = []watch{
		{"filter", []string{"FORWARD", chainForward}},
		{"nat", []string{"PREROUTING", "POSTROUTING", chainDNAT, chainHairpin, chainSNAT}},
	}
	watched6 = []watch{{"filter", []string{"FORWARD", chainForward}}}
)

func chainKey(table, chain string) string { return table + "/" + chain }

// tableLister is an ipt that prints a whole table in one call (`<cmd> -t
// TABLE -S`): readView then starts one iptables per table instead of one
// per chain, which is most of what a run on the router costs.
type tableLister interface {
	ListTable(table string) ([]string, error)
}

// readView lists the chains of watched that exist: one `<cmd> -S` per
// table when t is a tableLister, else one per table for the names and one
// per chain for the rules.
func readView(t ipt, cmd string, watched []watch) (*view, error) {
	v := &view{chains: map[string][]rule{}}
	for _, w := range watched {
		if err := v.readTable(t, cmd, w); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// readTable reads the watched chains of one table into v.
func (v *view) readTable(t ipt, cmd string, w watch) error {
	if tl, ok := t.(tableLister); ok {
		lines, err := tl.ListTable(w.table)
		if err != nil {
			return fmt.Errorf("%s -t %s -S: %w", cmd, w.table, err)
		}
		v.takeTable(w, lines)
		return nil
	}
	names, err := t.ListChains(w.table)
	if err != nil {
		return fmt.Errorf("%s -t %s -S: %w", cmd, w.table, err)
	}
	for _, chain := range w.chains {
		if !slices.Contains(names, chain) {
			continue
		}
		lines, err := t.List(w.table, chain)
		if err != nil {
			return fmt.Errorf("%s -t %s -S %s: %w", cmd, w.table, chain, err)
		}
		v.chains[chainKey(w.table, chain)] = parseRules(lines)
	}
	return nil
}

// takeTable keeps the watched chains of a whole table's `-S` lines: a
// chain exists when the table declares it ("-P" for a built-in one, "-N"),
// and its rules are its "-A" lines, in order.
func (v *view) takeTable(w watch, lines []string) {
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) >= 2 && (f[0] == "-P" || f[0] == "-N") && slices.Contains(w.chains, f[1]) {
			v.chains[chainKey(w.table, f[1])] = []rule{}
		}
	}
	for _, r := range parseRules(lines) {
		if k := chainKey(w.table, r.chain); slices.Contains(w.chains, r.chain) && v.chains[k] != nil {
			v.chains[k] = append(v.chains[k], r)
		}
	}
}

// wholeTables is go-iptables with ListTable, by the binary it runs.
type wholeTables struct {
	*iptables.IPTables
	path string
}

// withTableLister gives t ListTable when cmd's binary is found, else
// leaves it as it is (a chain at a time).
func withTableLister(t *iptables.IPTables, sys system, cmd string) ipt {
	path, err := sys.lookPath(cmd)
	if err != nil {
		return t
	}
	return wholeTables{IPTables: t, path: path}
}

// ListTable runs `<cmd> -w -t table -S` (waiting for a legacy xtables
// lock as go-iptables does).
func (w wholeTables) ListTable(table string) ([]string, error) {
	out, err := exec.Command(w.path, "-w", "-t", table, "-S").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			return nil, fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(out), "\n"), "\n"), nil
}

// parseRules keeps the rule lines of `iptables -S` output.
func parseRules(lines []string) []rule {
	var out []rule
	for _, l := range lines {
		if r, err := parseRule(l); err == nil {
			out = append(out, r)
		}
	}
	return out
}

func (v *view) exists(table, chain string) bool {
	_, ok := v.chains[chainKey(table, chain)]
	return ok
}

func (v *view) rules(table, chain string) []rule { return v.chains[chainKey(table, chain)] }

// has reports a rule of chain whose arguments are spec.
func (v *view) has(table, chain string, spec []string) bool {
	return slices.ContainsFunc(v.rules(table, chain), func(r rule) bool { return slices.Equal(r.args, spec) })
}

// clone is a copy of v that edits leave v alone in: a batch stages its
// changes on one.
func (v *view) clone() *view {
	c := &view{chains: make(map[string][]rule, len(v.chains))}
	for k, rules := range v.chains {
		c.chains[k] = slices.Clone(rules)
	}
	return c
}

// The edits below record what iptables was told to do, and each returns
// how to take itself back (a batch drops what a failed change staged).

// create records a new, empty chain.
func (v *view) create(table, chain string) (undo func()) {
	k := chainKey(table, chain)
	v.chains[k] = []rule{}
	return func() { delete(v.chains, k) }
}

// add records a rule appended to chain, or inserted first.
func (v *view) add(table, chain string, spec []string, first bool) (undo func()) {
	k := chainKey(table, chain)
	r := rule{chain: chain, args: slices.Clone(spec)}
	if first {
		v.chains[k] = slices.Insert(v.chains[k], 0, r)
		return func() { v.chains[k] = slices.Delete(v.chains[k], 0, 1) }
	}
	v.chains[k] = append(v.chains[k], r)
	return func() { v.chains[k] = v.chains[k][:len(v.chains[k])-1] }
}

// remove records the deletion of the first rule of chain with these
// arguments, as `iptables -D` deletes it.
func (v *view) remove(table, chain string, args []string) (undo func()) {
	k := chainKey(table, chain)
	rules := v.chains[k]
	i := slices.IndexFunc(rules, func(r rule) bool { return slices.Equal(r.args, args) })
	if i < 0 {
		return func() {}
	}
	r := rules[i]
	v.chains[k] = slices.Delete(rules, i, i+1)
	return func() { v.chains[k] = slices.Insert(v.chains[k], i, r) }
}

// jumps are the rules of h's built-in chain that jump to h's chain.
func (v *view) jumps(h hook) []rule {
	var out []rule
	for _, r := range v.rules(h.table, h.builtin) {
		if r.target() == h.chain {
			out = append(out, r)
		}
	}
	return out
}

// hooked reports whether h's chain is reached: it exists and the built-in
// chain holds the jump portfwd writes for wan.
func (v *view) hooked(h hook, wan string) bool {
	want := h.jump(wan)
	return v.exists(h.table, h.chain) &&
		slices.ContainsFunc(v.jumps(h), func(r rule) bool { return slices.Equal(r.args, want) })
}
