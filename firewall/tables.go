package firewall

import (
	"errors"
	"fmt"

	"github.com/coreos/go-iptables/iptables"

	"github.com/portfwd/portfwd/forward"
)

// tables is one address family's side of the router's firewall: iptables
// for IPv4 (DNAT, ACCEPT, hairpin), ip6tables for IPv6 (an ACCEPT per
// pinhole, no NAT). Each has its own rules, view and iptables-restore; the
// two never share a write.
type tables struct {
	family  forward.Family
	ipt     ipt
	restore restorer // nil: no batches, every write an iptables call
	view    *view    // what the last List read, kept current by Add, Delete and a batch's Commit; nil until then
}

// cmd is the family's command, for messages: "iptables" or "ip6tables".
func (t *tables) cmd() string {
	if t.family == forward.IPv6 {
		return "ip6tables"
	}
	return "iptables"
}

// hooks are the family's chains in the order they are created; Teardown
// removes them in reverse.
func (t *tables) hooks() []hook {
	if t.family == forward.IPv6 {
		return hooks6
	}
	return hooks
}

// owned are the family's chains in the order Delete empties them of a
// mapping.
func (t *tables) owned() []chainRules {
	if t.family == forward.IPv6 {
		return owned6
	}
	return owned
}

// watched are the chains the family's view reads.
func (t *tables) watched() []watch {
	if t.family == forward.IPv6 {
		return watched6
	}
	return watched
}

// read reads the view afresh and keeps it for the writes that follow.
func (t *tables) read() (*view, error) {
	t.view = nil
	v, err := readView(t.ipt, t.cmd(), t.watched())
	if err != nil {
		return nil, err
	}
	t.view = v
	return v, nil
}

// current is the view the last List read, kept current since, or a fresh
// one.
func (t *tables) current() (*view, error) {
	if t.view != nil {
		return t.view, nil
	}
	return t.read()
}

// tablesOf is the side of the firewall mappings of family fam are on. An
// IPv6 change on a host whose ip6tables New could not use is an error
// saying why; forward.Apply refuses those before asking (Properties.IPv6),
// so only a direct caller sees it.
func (f *Firewall) tablesOf(fam forward.Family) (*tables, error) {
	if fam != forward.IPv6 {
		return &f.t4, nil
	}
	if f.t6 == nil {
		return nil, fmt.Errorf("the iptables backend has no IPv6 here (%v): use family: ipv4", f.no6)
	}
	return f.t6, nil
}

// sides are the families' tables this Firewall has, IPv4 first.
func (f *Firewall) sides() []*tables {
	if f.t6 == nil {
		return []*tables{&f.t4}
	}
	return []*tables{&f.t4, f.t6}
}

// newTables6 is the IPv6 side on this host, or nil with why not: an
// ip6tables of the same flavour as iptables (rules written by the other
// would be invisible to this one's save, and each flavour drops alone)
// that can read its filter table, on a kernel with IPv6.
func newTables6(sys system, flavour string) (*tables, error) {
	if _, err := sys.lookPath("ip6tables"); err != nil {
		return nil, errors.New("no ip6tables binary in PATH")
	}
	if got := sys.flavour("ip6tables"); got != flavour {
		return nil, fmt.Errorf("ip6tables is %q, iptables %q: they must be the same flavour", got, flavour)
	}
	if _, err := sys.readFile(ipv6ForwardPath); err != nil {
		return nil, fmt.Errorf("the kernel has no IPv6: %w", err)
	}
	t, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv6))
	if err != nil {
		return nil, fmt.Errorf("starting ip6tables: %w", err)
	}
	// A kernel without the flavour's ip6tables support fails here, not in
	// every List after.
	if _, err := t.ListChains("filter"); err != nil {
		return nil, fmt.Errorf("ip6tables -t filter -S: %w", err)
	}
	t6 := &tables{family: forward.IPv6, ipt: withTableLister(t, sys, "ip6tables")}
	if path := restoreBinary(sys, "ip6tables"); path != "" {
		t6.restore = restoreCmd{path: path, name: "ip6tables-restore"}
	}
	return t6, nil
}
