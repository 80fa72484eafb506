package firewall

import (
	"context"
	"reflect"
	"testing"
)

// TestReadViewWholeTable: reading each table in one `-S` (tableLister)
// gives the same view as a chain at a time — chains that exist with no
// rules, portfwd's chains and the built-in ones with foreign rules, a
// chain that is not watched left out — in one read per table instead of
// one per chain.
func TestReadViewWholeTable(t *testing.T) {
	f, fake := newTest(t)
	for _, m := range []uint16{25565, 25566} {
		if _, err := f.Add(context.Background(), mc(m, "192.168.77.10")); err != nil {
			t.Fatal(err)
		}
	}
	fake.mustAppend(t, "filter", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT") // not watched
	before := fake.reads
	chained, err := readView(fake, "iptables", watched)
	if err != nil {
		t.Fatal(err)
	}
	perChain := fake.reads - before
	before = fake.reads
	whole, err := readView(wholeFake{fake}, "iptables", watched)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalised(whole), normalised(chained)) {
		t.Errorf("whole-table view\n%+v\nwant the chain-at-a-time view\n%+v", whole.chains, chained.chains)
	}
	if got := fake.reads - before; got != len(watched) || perChain <= len(watched) {
		t.Errorf("whole-table read made %d reads (chain at a time %d), want one per table (%d)", got, perChain, len(watched))
	}
	if !whole.exists("nat", chainDNAT) || whole.exists("filter", "INPUT") || len(whole.rules("filter", chainForward)) != 2 {
		t.Errorf("whole-table view: %+v", whole.chains)
	}
}

// normalised is v's chains with an empty chain as an empty slice, however
// it was read.
func normalised(v *view) map[string][]rule {
	out := map[string][]rule{}
	for k, rs := range v.chains {
		out[k] = append([]rule{}, rs...)
	}
	return out
}
