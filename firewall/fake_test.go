package firewall

import (
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
	k := key(table, chain)
	f.chains[k] = append(f.chains[k], slices.Clone(spec))
	return nil
}

func (f *fakeIPT) Insert(table, chain string, pos int, spec ...string) error {
	f.writes++
	if _, err := f.index(table, chain, spec); err != nil {
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
