package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

func testSystem() system {
	return system{
		geteuid:   func() int { return 0 },
		lookPath:  func(string) (string, error) { return "/usr/sbin/iptables", nil },
		readFile:  func(string) ([]byte, error) { return []byte("1\n"), nil },
		writeFile: func(string, []byte) error { return nil },
		interfaces: func() ([]netIface, error) {
			p := netip.MustParsePrefix
			return []netIface{
				{name: "lo", addrs: []netip.Prefix{p("127.0.0.1/8"), p("::1/128")}},
				{name: "wan0", addrs: []netip.Prefix{p("fe80::1/64"), p("203.0.113.7/24")}},
				{name: "lan0", addrs: []netip.Prefix{p("fe80::2/64"), p("192.168.77.1/24")}},
			}, nil
		},
		version: func(cmd string) (string, error) { return cmd + " v1.8.9 (nf_tables)\n", nil },
	}
}

func newTest(t *testing.T) (*Firewall, *fakeIPT) {
	t.Helper()
	fake := newFakeIPT()
	// Foreign rules that must survive everything portfwd does.
	fake.mustAppend(t, "nat", "POSTROUTING", "-o", "wan0", "-j", "MASQUERADE")
	fake.mustAppend(t, "filter", "FORWARD", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")
	fake.mustAppend(t, "nat", "DOCKER", "-i", "docker0", "-j", "RETURN")
	fake.mustAppend(t, "nat", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER")
	return newFirewall(fake, "wan0", "nf_tables", testSystem()), fake
}

func mc(port uint16, host string) forward.Mapping {
	return forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: port},
		InternalHost: netip.MustParseAddr(host), InternalPort: 25565,
		Description: (forward.LegacyTagPrefix + "mc"), Enabled: true}
}

func TestConformance(t *testing.T) {
	var fake *fakeIPT
	forwardtest.Run(t, forwardtest.Harness{
		New: func(t *testing.T) forward.Backend {
			var f *Firewall
			f, fake = newTest(t)
			return f
		},
		Self: netip.MustParseAddr("192.168.77.10"),
		Port: 40000,
		AddForeign: func(t *testing.T, m forward.Mapping) {
			fake.mustAppend(t, "nat", "PREROUTING", "-i", "wan0", "-p", string(m.Protocol), "-m", string(m.Protocol),
				"--dport", strconv.Itoa(int(m.ExternalPort)), "-m", "comment", "--comment", m.Description,
				"-j", "DNAT", "--to-destination", netip.AddrPortFrom(m.InternalHost, m.InternalPort).String())
		},
	})
}

func TestAddWritesOnce(t *testing.T) {
	f, fake := newTest(t)
	ctx := context.Background()
	if _, err := f.Add(ctx, mc(25565, "192.168.77.10")); err != nil {
		t.Fatal(err)
	}
	// Two chains, two jumps, DNAT and ACCEPT.
	if fake.writes-4 != 6 {
		t.Errorf("first Add: %d writes, want 6", fake.writes-4)
	}
	want := map[string]string{
		"nat/PREROUTING":         `["-i" "wan0" "-j" "PORTFWD-PREROUTING"]`,
		"filter/FORWARD":         `["-j" "PORTFWD-FORWARD"]`,
		"nat/PORTFWD-PREROUTING": `["-p" "tcp" "-m" "tcp" "--dport" "25565" "-m" "comment" "--comment" "portfwd:mc" "-j" "DNAT" "--to-destination" "192.168.77.10:25565"]`,
		"filter/PORTFWD-FORWARD": `["-d" "192.168.77.10/32" "-p" "tcp" "-m" "tcp" "--dport" "25565" "-m" "conntrack" "--ctstate" "DNAT" "--ctorigdstport" "25565" "-m" "comment" "--comment" "portfwd:mc" "-j" "ACCEPT"]`,
	}
	snap := fake.snapshot()
	for chain, rule := range want {
		if !strings.Contains(snap, chain+"\n  "+rule+"\n") {
			t.Errorf("%s: first rule is not %s:\n%s", chain, rule, snap)
		}
	}
	before := fake.writes
	if _, err := f.Add(ctx, mc(25565, "192.168.77.10")); err != nil {
		t.Fatal(err)
	}
	if fake.writes != before {
		t.Errorf("second Add of the same mapping wrote %d times, want 0", fake.writes-before)
	}
	if fake.snapshot() != snap {
		t.Errorf("second Add changed the tables")
	}
}

func TestDeleteExactlyOne(t *testing.T) {
	f, fake := newTest(t)
	ctx := context.Background()
	base := fake.snapshot()
	a, b := mc(25565, "192.168.77.10"), mc(25566, "192.168.77.10") // same internal port
	for _, m := range []forward.Mapping{a, b} {
		if _, err := f.Add(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Add(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := f.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	ms, err := f.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0] != a {
		t.Errorf("after Delete of %v, List = %v; want only %v", b.Key, ms, a)
	}
	if n := strings.Count(fake.snapshot(), "portfwd:mc"); n != 2 {
		t.Errorf("after Delete, %d tagged rules, want 2 (DNAT and ACCEPT of %v):\n%s", n, a.Key, fake.snapshot())
	}
	if err := f.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := f.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fake.snapshot(); got != base {
		t.Errorf("after Teardown:\n%s\nwant the state before the first Add:\n%s", got, base)
	}
}

func TestTeardownLeavesForeignRules(t *testing.T) {
	f, fake := newTest(t)
	ctx := context.Background()
	base := fake.snapshot()
	for _, m := range []forward.Mapping{mc(25565, "192.168.77.10"), mc(27015, "192.168.77.11")} {
		if _, err := f.Add(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fake.snapshot(); got != base {
		t.Errorf("after Teardown:\n%s\nwant:\n%s", got, base)
	}
	before := fake.writes
	if err := f.Teardown(ctx); err != nil || fake.writes != before {
		t.Errorf("second Teardown: %v, %d writes; want nil, 0", err, fake.writes-before)
	}
}

func TestAddConflictWithOwnRule(t *testing.T) {
	f, fake := newTest(t)
	ctx := context.Background()
	if _, err := f.Add(ctx, mc(25565, "192.168.77.10")); err != nil {
		t.Fatal(err)
	}
	snap := fake.snapshot()
	other := mc(25565, "192.168.77.11")
	other.Description = (forward.LegacyTagPrefix + "other")
	_, err := f.Add(ctx, other)
	var ce *forward.ConflictError
	if !errors.As(err, &ce) || ce.Holder.Description != "portfwd:mc" {
		t.Fatalf("Add over portfwd:mc = %v; want a conflict naming it", err)
	}
	if fake.snapshot() != snap {
		t.Errorf("a refused Add changed the tables")
	}
}

func TestStaleJumpReplaced(t *testing.T) {
	f, fake := newTest(t)
	fake.mustAppend(t, "nat", chainDNAT)
	fake.chains["nat/"+chainDNAT] = nil
	fake.mustAppend(t, "nat", "PREROUTING", "-i", "eth9", "-j", chainDNAT)
	if _, err := f.Add(context.Background(), mc(25565, "192.168.77.10")); err != nil {
		t.Fatal(err)
	}
	v, err := readView(fake, "iptables", watched)
	if err != nil {
		t.Fatal(err)
	}
	jumps := v.jumps(hookDNAT)
	if len(jumps) != 1 || jumps[0].args[1] != "wan0" {
		t.Errorf("jumps to %s = %v; want one, from wan0", chainDNAT, jumps)
	}
}

func TestExternalAddrAndProperties(t *testing.T) {
	f, _ := newTest(t)
	addr, err := f.ExternalAddr(context.Background())
	if err != nil || addr != netip.MustParseAddr("203.0.113.7") {
		t.Errorf("ExternalAddr = %v, %v", addr, err)
	}
	p := f.Properties()
	if p.ThirdParty != forward.ThirdPartyYes || !p.PermanentLeases || p.ListsFromState || p.Name != "iptables" || !p.Local || !p.Hairpin {
		t.Errorf("Properties = %+v", p)
	}
	if f.Flavour() != "nf_tables" || !slices.Equal(p.Protocols, []string{"iptables-nft"}) {
		t.Errorf("Flavour = %q, Protocols %q; want nf_tables, iptables-nft", f.Flavour(), p.Protocols)
	}
}

func TestCancelledContext(t *testing.T) {
	f, fake := newTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	before := fake.writes
	if _, err := f.Add(ctx, mc(25565, "192.168.77.10")); !errors.Is(err, context.Canceled) {
		t.Errorf("Add with a cancelled context = %v", err)
	}
	if fake.writes != before {
		t.Errorf("Add with a cancelled context wrote")
	}
}

func TestHairpin(t *testing.T) {
	f, fake := newTest(t)
	ctx := context.Background()
	base := fake.snapshot()
	m := mc(25565, "192.168.77.10")
	m.Hairpin = true
	if _, err := f.Add(ctx, m); err != nil {
		t.Fatal(err)
	}
	snap := fake.snapshot()
	for _, want := range []string{
		"nat/PREROUTING\n  [\"!\" \"-i\" \"wan0\" \"-m\" \"addrtype\" \"--dst-type\" \"LOCAL\" \"-j\" \"PORTFWD-HAIRPIN\"]",
		"nat/POSTROUTING\n  [\"-j\" \"PORTFWD-POSTROUTING\"]",
		"nat/PORTFWD-HAIRPIN\n  " + fmt.Sprintf("%q", dnatSpec(m)),
		`"-s" "192.168.77.0/24" "-d" "192.168.77.10/32"`,
	} {
		if !strings.Contains(snap, want) {
			t.Errorf("after a hairpin Add, no %s in\n%s", want, snap)
		}
	}
	if got := listOne(t, f, m.Key); !got.Hairpin || !got.Enabled {
		t.Errorf("List = %+v; want Hairpin and Enabled", got)
	}

	// Switched off: the hairpin rules go, the forward stays.
	m.Hairpin = false
	if _, err := f.Add(ctx, m); err != nil {
		t.Fatal(err)
	}
	if got := listOne(t, f, m.Key); got.Hairpin || !got.Enabled {
		t.Errorf("List after hairpin off = %+v", got)
	}
	if n := strings.Count(fake.snapshot(), "portfwd:mc"); n != 2 {
		t.Errorf("%d tagged rules after hairpin off, want 2 (DNAT, ACCEPT):\n%s", n, fake.snapshot())
	}
	m.Hairpin = true
	if _, err := f.Add(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := f.Delete(ctx, m); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(fake.snapshot(), "portfwd:mc") {
		t.Errorf("Delete left rules of %v:\n%s", m.Key, fake.snapshot())
	}
	if err := f.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fake.snapshot(); got != base {
		t.Errorf("after Teardown:\n%s\nwant:\n%s", got, base)
	}
}

// A host reached through another router never shares a subnet with the
// LAN clients: hairpin needs no MASQUERADE for it.
func TestHairpinRoutedHost(t *testing.T) {
	f, fake := newTest(t)
	m := mc(25565, "10.9.0.5")
	m.Hairpin = true
	if _, err := f.Add(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if rules := fake.chains["nat/"+chainSNAT]; len(rules) != 0 {
		t.Errorf("MASQUERADE written for a routed host: %q", rules)
	}
	if got := listOne(t, f, m.Key); !got.Hairpin {
		t.Errorf("List = %+v; want Hairpin", got)
	}
}

// A mapping that would not forward is listed disabled, so Diff replaces it
// and the next Add mends what is missing.
func TestListDisabledWhenBroken(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(*fakeIPT)
	}{
		{"FORWARD jump gone", func(fake *fakeIPT) { fake.chains["filter/FORWARD"] = fake.chains["filter/FORWARD"][1:] }},
		{"ACCEPT rule gone", func(fake *fakeIPT) { fake.chains["filter/"+chainForward] = nil }},
		{"DNAT jump gone", func(fake *fakeIPT) { fake.chains["nat/PREROUTING"] = fake.chains["nat/PREROUTING"][1:] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, fake := newTest(t)
			m := mc(25565, "192.168.77.10")
			if _, err := f.Add(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			want := fake.snapshot()
			tc.breakIt(fake)
			if got := listOne(t, f, m.Key); got.Enabled {
				t.Errorf("List = %+v; want it disabled", got)
			}
			if _, err := f.Add(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			if got := listOne(t, f, m.Key); !got.Enabled || fake.snapshot() != want {
				t.Errorf("after Add: %+v\n%s\nwant the tables as first written:\n%s", got, fake.snapshot(), want)
			}
		})
	}
}

// A pass lists once and then adds: each new mapping costs its two rules
// and nothing else, the cost of a plain loop of iptables -A.
func TestAddsAfterListOnlyWrite(t *testing.T) {
	f, fake := newTest(t)
	ctx := context.Background()
	if _, err := f.List(ctx); err != nil {
		t.Fatal(err)
	}
	reads, writes := fake.reads, fake.writes
	const n = 200
	for i := range n {
		if _, err := f.Add(ctx, mc(uint16(30000+i), "192.168.77.10")); err != nil {
			t.Fatal(err)
		}
	}
	if got := fake.writes - writes; got != 2*n+4 {
		t.Errorf("%d adds: %d writes, want %d (two rules each, two chains and their jumps)", n, got, 2*n+4)
	}
	if fake.reads != reads || fake.checks != 0 {
		t.Errorf("%d adds after a List: %d reads, %d checks; want none", n, fake.reads-reads, fake.checks)
	}
	ms, err := f.List(ctx)
	if err != nil || len(ms) != n {
		t.Errorf("List: %d mappings, %v; want %d", len(ms), err, n)
	}
}

// iptables may print a rule in another form than portfwd wrote it (another
// version orders the matches differently): the rule is checked with
// iptables -C and not written twice.
func TestAddRulePrintedDifferently(t *testing.T) {
	f, fake := newTest(t)
	ctx := context.Background()
	m := mc(25565, "192.168.77.10")
	if _, err := f.Add(ctx, m); err != nil {
		t.Fatal(err)
	}
	fake.print = func(r []string) []string {
		if i := slices.Index(r, "comment"); i > 0 { // the comment match last
			match := slices.Clone(r[i-1 : i+3])
			r = append(slices.Delete(r, i-1, i+3), match...)
		}
		return r
	}
	snap := fake.snapshot()
	again := newFirewall(fake, "wan0", "nf_tables", testSystem())
	if _, err := again.List(ctx); err != nil {
		t.Fatal(err)
	}
	before := fake.writes
	if _, err := again.Add(ctx, m); err != nil {
		t.Fatal(err)
	}
	if fake.writes != before || fake.snapshot() != snap || fake.checks == 0 {
		t.Errorf("Add of a rule printed differently: %d writes, %d checks\n%s", fake.writes-before, fake.checks, fake.snapshot())
	}
}

func listOne(t *testing.T, f *Firewall, k forward.Key) forward.Mapping {
	t.Helper()
	ms, err := f.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Key == k {
			return m
		}
	}
	t.Fatalf("List has no %v: %v", k, ms)
	return forward.Mapping{}
}

// An older portfwd's rules (portfwd:<rule>) are re-tagged by an Add of the
// same rule with its config's tag: afterwards the key has exactly the new
// rules, listed with the new tag; another config's rules on the key are a
// conflict.
func TestAddRetagsLegacyRules(t *testing.T) {
	f, fake := newTest(t)
	ctx := context.Background()
	if _, err := f.Add(ctx, mc(25565, "192.168.77.10")); err != nil { // portfwd:mc
		t.Fatal(err)
	}
	retagged := mc(25565, "192.168.77.10")
	retagged.Description = forward.Tag("games", "mc")
	if _, err := f.Add(ctx, retagged); err != nil {
		t.Fatalf("re-tag: %v", err)
	}
	list, err := f.List(ctx)
	if err != nil || len(list) != 1 || list[0].Description != "pf:games:mc" {
		t.Fatalf("after the re-tag List = %+v, %v; want one mapping tagged pf:games:mc", list, err)
	}
	if strings.Contains(fake.snapshot(), "portfwd:mc") {
		t.Errorf("the old rules stayed:\n%s", fake.snapshot())
	}
	other := retagged
	other.Description = forward.Tag("other", "mc")
	var ce *forward.ConflictError
	if _, err := f.Add(ctx, other); !errors.As(err, &ce) {
		t.Errorf("Add over another config's rules = %v; want a conflict", err)
	}
}
