package firewall

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// fakeIPT keeps iptables tables in memory, renders List like `iptables -S`
// and counts writes.
type fakeIPT struct {
	chains map[string][][]string // "table/chain" -> rules
	writes int
	reads  int // List and ListChains calls
	checks int // Exists calls
	// print, if set, changes how List prints a rule, as another iptables
	// version might.
	print func([]string) []string
	// reject, if set, refuses the rules it returns an error for, as the
	// kernel refuses a bad rule: in Append and Insert, and in restore.
	reject func(table, chain string, spec []string) error
	// restores counts restore calls, scripts keeps their input.
	restores int
	scripts  []string
}

func newFakeIPT() *fakeIPT {
	f := &fakeIPT{chains: map[string][][]string{}}
	for _, c := range []string{"nat/PREROUTING", "nat/POSTROUTING", "nat/OUTPUT", "filter/FORWARD", "filter/INPUT"} {
		f.chains[c] = nil
	}
	return f
}

func key(table, chain string) string { return table + "/" + chain }

func (f *fakeIPT) ListChains(table string) ([]string, error) {
	f.reads++
	var out []string
	for _, k := range slices.Sorted(maps.Keys(f.chains)) {
		if t, chain, _ := strings.Cut(k, "/"); t == table {
			out = append(out, chain)
		}
	}
	return out, nil
}

func (f *fakeIPT) NewChain(table, chain string) error {
	f.writes++
	if _, ok := f.chains[key(table, chain)]; ok {
		return fmt.Errorf("chain %s exists", chain)
	}
	f.chains[key(table, chain)] = nil
	return nil
}

func (f *fakeIPT) ClearChain(table, chain string) error {
	f.writes++
	f.chains[key(table, chain)] = nil
	return nil
}

func (f *fakeIPT) DeleteChain(table, chain string) error {
	f.writes++
	k := key(table, chain)
	if len(f.chains[k]) > 0 {
		return fmt.Errorf("chain %s not empty", chain)
	}
	for c, rules := range f.chains {
		for _, r := range rules {
			if strings.HasPrefix(c, table+"/") && slices.Contains(r, chain) {
				return fmt.Errorf("chain %s in use by %s", chain, c)
			}
		}
	}
	delete(f.chains, k)
	return nil
}

func (f *fakeIPT) index(table, chain string, spec []string) (int, error) {
	rules, ok := f.chains[key(table, chain)]
	if !ok {
		return -1, fmt.Errorf("iptables: No chain/target/match by that name (%s)", chain)
	}
	return slices.IndexFunc(rules, func(r []string) bool { return slices.Equal(r, spec) }), nil
}

func (f *fakeIPT) Exists(table, chain string, spec ...string) (bool, error) {
	f.checks++
	i, err := f.index(table, chain, spec)
	return i >= 0, err
}

func (f *fakeIPT) Append(table, chain string, spec ...string) error {
	f.writes++
	if _, err := f.index(table, chain, spec); err != nil {
		return err
	}
	if err := f.refused(table, chain, spec); err != nil {
		return err
	}
	k := key(table, chain)
	f.chains[k] = append(f.chains[k], slices.Clone(spec))
	return nil
}

func (f *fakeIPT) Insert(table, chain string, pos int, spec ...string) error {
	f.writes++
	if _, err := f.index(table, chain, spec); err != nil {
		return err
	}
	if err := f.refused(table, chain, spec); err != nil {
		return err
	}
	k := key(table, chain)
	f.chains[k] = slices.Insert(f.chains[k], pos-1, slices.Clone(spec))
	return nil
}

func (f *fakeIPT) Delete(table, chain string, spec ...string) error {
	f.writes++
	i, err := f.index(table, chain, spec)
	if err != nil {
		return err
	}
	if i < 0 {
		return fmt.Errorf("iptables: Bad rule (does a matching rule exist in that chain?)")
	}
	k := key(table, chain)
	f.chains[k] = slices.Delete(f.chains[k], i, i+1)
	return nil
}

func (f *fakeIPT) List(table, chain string) ([]string, error) {
	f.reads++
	rules, ok := f.chains[key(table, chain)]
	if !ok {
		return nil, fmt.Errorf("iptables: No chain/target/match by that name (%s)", chain)
	}
	out := []string{"-N " + chain}
	if strings.ToUpper(chain) == chain && !strings.HasPrefix(chain, "PORTFWD") {
		out[0] = "-P " + chain + " ACCEPT"
	}
	for _, r := range rules {
		if f.print != nil {
			r = f.print(slices.Clone(r))
		}
		words := make([]string, len(r))
		for i, w := range r {
			words[i] = quoteArg(w)
		}
		out = append(out, "-A "+chain+" "+strings.Join(words, " "))
	}
	return out, nil
}

// snapshot is the full state, for comparing before and after.
func (f *fakeIPT) snapshot() string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(f.chains)) {
		fmt.Fprintf(&b, "%s\n", k)
		for _, r := range f.chains[k] {
			fmt.Fprintf(&b, "  %q\n", r)
		}
	}
	return b.String()
}

// mustAppend adds a foreign rule as another tool would.
func (f *fakeIPT) mustAppend(t *testing.T, table, chain string, spec ...string) {
	t.Helper()
	if _, ok := f.chains[key(table, chain)]; !ok {
		f.chains[key(table, chain)] = nil
	}
	if err := f.Append(table, chain, spec...); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeIPT) refused(table, chain string, spec []string) error {
	if f.reject == nil {
		return nil
	}
	return f.reject(table, chain, spec)
}

// restore is iptables-restore --noflush: each "*table ... COMMIT" block
// all or nothing, blocks before a failing one kept (as both flavours do).
// Its writes are not counted in writes.
func (f *fakeIPT) restore(ctx context.Context, script string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.restores++
	f.scripts = append(f.scripts, script)
	writes := f.writes
	defer func() { f.writes = writes }()
	lines := strings.Split(strings.TrimSuffix(script, "\n"), "\n")
	for start := 0; start < len(lines); {
		n, err := f.restoreBlock(lines[start:])
		if err != nil {
			return fmt.Errorf("iptables-restore: line %d failed: %w", start+n+1, err)
		}
		start += n + 1
	}
	return nil
}

// restoreBlock runs one table's block, the first of lines, and says how
// many lines it took before COMMIT.
func (f *fakeIPT) restoreBlock(lines []string) (int, error) {
	table, ok := strings.CutPrefix(lines[0], "*")
	if !ok || table == "" {
		return 0, fmt.Errorf("%q is no table", lines[0])
	}
	saved := map[string][][]string{}
	for k, rules := range f.chains {
		saved[k] = slices.Clone(rules)
	}
	for i := 1; i < len(lines); i++ {
		if lines[i] == "COMMIT" {
			return i, nil
		}
		if err := f.restoreLine(table, lines[i]); err != nil {
			f.chains = saved
			return i, err
		}
	}
	f.chains = saved
	return len(lines) - 1, fmt.Errorf("no COMMIT for table %s", table)
}

func (f *fakeIPT) restoreLine(table, line string) error {
	w, err := splitArgs(line)
	if err != nil || len(w) < 2 {
		return fmt.Errorf("bad line %q", line)
	}
	switch w[0] {
	case "-N":
		return f.NewChain(table, w[1])
	case "-A":
		return f.Append(table, w[1], w[2:]...)
	case "-D":
		return f.Delete(table, w[1], w[2:]...)
	case "-I":
		if len(w) < 3 || w[2] != "1" {
			return fmt.Errorf("bad insert %q", line)
		}
		return f.Insert(table, w[1], 1, w[3:]...)
	}
	return fmt.Errorf("unknown command %q", line)
}

// wholeFake is fakeIPT with ListTable: the table printed as `iptables -t
// TABLE -S` prints it, every chain declared first, then every rule.
type wholeFake struct{ *fakeIPT }

func (w wholeFake) ListTable(table string) ([]string, error) {
	w.reads++
	chains, _ := w.fakeIPT.ListChains(table)
	w.reads--
	var decl, rules []string
	for _, c := range chains {
		lines, err := w.fakeIPT.List(table, c)
		w.reads--
		if err != nil {
			return nil, err
		}
		decl, rules = append(decl, lines[0]), append(rules, lines[1:]...)
	}
	return append(decl, rules...), nil
}
