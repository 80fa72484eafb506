package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/forward"
)

// newTest6 is newTest with an IPv6 side: ip6tables faked by fake6, which
// holds the router's own IPv6 forwarding rules, and both -restores.
func newTest6(t *testing.T) (f *Firewall, fake4, fake6 *fakeIPT) {
	t.Helper()
	f, fake4 = newBatchTest(t)
	fake6 = &fakeIPT{chains: map[string][][]string{"filter/INPUT": nil, "filter/FORWARD": nil, "filter/OUTPUT": nil}}
	fake6.mustAppend(t, "filter", "FORWARD", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")
	fake6.mustAppend(t, "filter", "FORWARD", "-i", "lan0", "-o", "wan0", "-j", "ACCEPT")
	f.t6 = &tables{family: forward.IPv6, ipt: fake6, restore: fake6}
	return f, fake4, fake6
}

// pin is an IPv6 pinhole for host on port.
func pin(port uint16, host string) forward.Mapping {
	return forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: port, Family: forward.IPv6},
		InternalHost: netip.MustParseAddr(host), InternalPort: port,
		Description: forward.Tag("games", "mc"), Enabled: true}
}

// ip6tables-save output, from both flavours, read back: portfwd's
// pinholes with their owners, and none of the rules that open more than
// one port to one host.
func TestParseIp6tablesSave(t *testing.T) {
	b, err := os.ReadFile("testdata/ip6tables-save.txt")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "-A "+chainForward+" ") || strings.HasPrefix(l, "-A FORWARD ") {
			lines = append(lines, l)
		}
	}
	v := &view{chains: map[string][]rule{}}
	for _, r := range parseRules(lines) {
		v.chains[chainKey("filter", r.chain)] = append(v.chains[chainKey("filter", r.chain)], r)
	}
	got := pinholesListed(v, "wan0")
	h := netip.MustParseAddr
	udp := pin(19132, "2a02:8000:77:1::10")
	udp.Protocol, udp.Description = forward.UDP, `pf:games:bedrock the "Bedrock" server`
	web := pin(8080, "2a02:8000:77:1::11")
	web.Description = "portfwd:web"
	mine := pin(25565, "2a02:8000:77:1::10")
	mine.Description = "pf:games:minecraft"
	want := []forward.Mapping{mine, udp, web}
	if !slices.Equal(got, want) {
		t.Errorf("parsed\n%#v\nwant\n%#v", got, want)
	}
	owners := []string{}
	for _, m := range got {
		owners = append(owners, m.Owner())
	}
	if want := []string{"minecraft", `bedrock the "Bedrock" server`, "web"}; !slices.Equal(owners, want) {
		t.Errorf("owners %q, want %q", owners, want)
	}
	if got := pinholesListed(v, "eth1"); got[0].Enabled || got[0].InternalHost != h("2a02:8000:77:1::10") {
		t.Errorf("listed for another WAN interface: %+v; want it disabled", got[0])
	}
}

// A pinhole written and printed back is the same rule, argument for
// argument, as `ip6tables -S` prints the lab's.
func TestPinholeSpecRoundTrip(t *testing.T) {
	m := pin(25565, "2a02:8000:77:1::10")
	m.Description = `pf:games:say "hi"`
	line := "-A PORTFWD-FORWARD"
	for _, w := range pinholeSpec(m, "wan0") {
		line += " " + quoteArg(w)
	}
	if want := `-A PORTFWD-FORWARD -d 2a02:8000:77:1::10/128 -i wan0 -p tcp -m tcp --dport 25565 -m comment --comment "pf:games:say \"hi\"" -j ACCEPT`; line != want {
		t.Errorf("rendered\n%s\nwant\n%s", line, want)
	}
	r, err := parseRule(line)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := r.pinhole(); !ok || got != m || !slices.Equal(r.args, pinholeSpec(got, "wan0")) {
		t.Errorf("read back %+v, %v from %q; want %+v, written again as it was", got, ok, r.args, m)
	}
}

// A pinhole is the chain, its jump first in FORWARD and one ACCEPT, in
// ip6tables only; a second Add writes nothing; it lives beside the IPv4
// forward of the same port; Delete and Teardown give both tables back.
func TestAddPinhole(t *testing.T) {
	f, fake4, fake6 := newTest6(t)
	ctx := context.Background()
	base4, base6 := fake4.snapshot(), fake6.snapshot()
	writes4, writes6 := fake4.writes, fake6.writes
	p := pin(25565, "2a02:8000:77:1::10")
	if _, err := f.Add(ctx, p); err != nil {
		t.Fatal(err)
	}
	if fake4.writes != writes4 || fake6.writes-writes6 != 3 {
		t.Errorf("Add of a pinhole: %d iptables writes, %d ip6tables writes; want 0, 3", fake4.writes-writes4, fake6.writes-writes6)
	}
	writes6 = fake6.writes
	snap := fake6.snapshot()
	for _, want := range []string{
		"filter/FORWARD\n  " + fmt.Sprintf("%q", []string{"-j", chainForward}) + "\n",
		"filter/PORTFWD-FORWARD\n  " + fmt.Sprintf("%q", pinholeSpec(p, "wan0")) + "\n",
	} {
		if !strings.Contains(snap, want) {
			t.Errorf("no %s in\n%s", want, snap)
		}
	}
	if _, err := f.Add(ctx, p); err != nil || fake6.snapshot() != snap || fake6.writes != writes6 {
		t.Errorf("second Add: %v, %d writes", err, fake6.writes-writes6)
	}
	v4 := mc(25565, "192.168.77.10")
	if _, err := f.Add(ctx, v4); err != nil {
		t.Fatal(err)
	}
	if got := listOne(t, f, p.Key); got != p {
		t.Errorf("List: %+v, want %+v", got, p)
	}
	if got := listOne(t, f, v4.Key); got != v4 {
		t.Errorf("List: %+v, want %+v", got, v4)
	}
	if err := f.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(fake6.snapshot(), "pf:games") || strings.Count(fake4.snapshot(), "portfwd:mc") != 2 {
		t.Errorf("Delete of the pinhole left\n%s\nor took the IPv4 forward's rules\n%s", fake6.snapshot(), fake4.snapshot())
	}
	if err := f.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if fake4.snapshot() != base4 || fake6.snapshot() != base6 {
		t.Errorf("after Teardown:\n%s%s\nwant as before:\n%s%s", fake4.snapshot(), fake6.snapshot(), base4, base6)
	}
}

// A pass with forwards and pinholes is one iptables-restore and one
// ip6tables-restore, writing what Add and Delete write; a second pass
// writes nothing; the last pass and Teardown give the tables back.
func TestBatchPinholes(t *testing.T) {
	batched, b4, b6 := newTest6(t)
	each, e4, e6 := newTest6(t)
	base4, base6 := b4.snapshot(), b6.snapshot()
	var first, second []forward.Mapping
	for i := range 10 {
		m := pin(uint16(30000+i), fmt.Sprintf("2a02:8000:77:1::%x", 0x10+i%3))
		m.Description = forward.Tag("t", fmt.Sprintf("r%d", i))
		v4 := mc(uint16(30000+i), "192.168.77.10")
		v4.Description = m.Description
		first = append(first, m, v4)
		if i%3 != 0 {
			m.InternalHost = netip.MustParseAddr("2a02:8000:77:1::20")
			second = append(second, m, v4)
		}
	}
	for i, desired := range [][]forward.Mapping{first, second, nil} {
		if res := reconcile(t, batched, desired); res.Failed() != 0 || res.Made() == 0 {
			t.Fatalf("pass %d batched: %d failed (%v), %d made", i, res.Failed(), firstErr(res), res.Made())
		}
		if res := reconcile(t, oneByOne{each}, desired); res.Failed() != 0 {
			t.Fatalf("pass %d one by one: %v", i, firstErr(res))
		}
		if b4.snapshot() != e4.snapshot() || b6.snapshot() != e6.snapshot() {
			t.Errorf("pass %d: the batch wrote\n%s\nAdd and Delete wrote\n%s", i, b6.snapshot(), e6.snapshot())
		}
		if b4.restores != i+1 || b6.restores != i+1 || e6.restores != 0 {
			t.Errorf("pass %d: %d iptables-restores, %d ip6tables-restores; want %d each", i, b4.restores, b6.restores, i+1)
		}
		if res := reconcile(t, batched, desired); res.Made() != 0 || b6.restores != i+1 {
			t.Errorf("pass %d again: %d made, %d ip6tables-restores; want nothing", i, res.Made(), b6.restores)
		}
	}
	if !strings.Contains(b6.scripts[0], "*filter\n-N PORTFWD-FORWARD\n-I FORWARD 1 -j PORTFWD-FORWARD\n-A PORTFWD-FORWARD -d 2a02:8000:77:1::10/128 -i wan0 -p tcp") {
		t.Errorf("the first ip6tables-restore script:\n%s", b6.scripts[0])
	}
	if err := batched.Teardown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b4.snapshot() != base4 || b6.snapshot() != base6 {
		t.Errorf("after the last pass and Teardown:\n%s%s\nwant as before:\n%s%s", b4.snapshot(), b6.snapshot(), base4, base6)
	}
}

// A failed ip6tables-restore: the pass goes one by one, so the refused
// pinhole fails alone, the others are made, and a warning names it.
func TestBatchPinholeRefused(t *testing.T) {
	f, _, fake6 := newTest6(t)
	fake6.reject = func(_, _ string, spec []string) error {
		if slices.Contains(spec, "30001") {
			return errors.New("refused")
		}
		return nil
	}
	desired := []forward.Mapping{pin(30000, "2a02:8000:77:1::10"), pin(30001, "2a02:8000:77:1::10"), mc(30000, "192.168.77.10")}
	res := reconcile(t, f, desired)
	for _, o := range res.Outcomes {
		if (o.Change.Key == desired[1].Key) != (o.Err != nil) {
			t.Errorf("%v: %v; want only %v to fail", o.Change.Key, o.Err, desired[1].Key)
		}
	}
	if w := f.Warnings(); len(w) != 1 || !strings.Contains(w[0], "ip6tables-restore failed") {
		t.Errorf("warnings %q; want the failed ip6tables-restore", w)
	}
}

// Another config's pinhole on the key is a conflict naming it; an older
// portfwd's tag for the same rule is taken over.
func TestPinholeConflict(t *testing.T) {
	f, _, fake6 := newTest6(t)
	ctx := context.Background()
	old := pin(25565, "2a02:8000:77:1::10")
	old.Description = forward.LegacyTagPrefix + "mc"
	if _, err := f.Add(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Add(ctx, pin(25565, "2a02:8000:77:1::10")); err != nil {
		t.Fatalf("taking over %s: %v", old.Description, err)
	}
	if strings.Contains(fake6.snapshot(), old.Description) {
		t.Errorf("the old tag's rule stayed:\n%s", fake6.snapshot())
	}
	other := pin(25565, "2a02:8000:77:1::11")
	other.Description = forward.Tag("other", "mc")
	snap := fake6.snapshot()
	var ce *forward.ConflictError
	if _, err := f.Add(ctx, other); !errors.As(err, &ce) || ce.Holder.Description != "pf:games:mc" || fake6.snapshot() != snap {
		t.Errorf("Add over pf:games:mc = %v; want a conflict naming it and nothing written", err)
	}
}

// A pinhole that lets nothing in is listed disabled, and Add mends it.
func TestPinholeDisabledWhenBroken(t *testing.T) {
	for name, breakIt := range map[string]func(*fakeIPT){
		"jump gone":          func(fake *fakeIPT) { fake.chains["filter/FORWARD"] = fake.chains["filter/FORWARD"][1:] },
		"for another uplink": func(fake *fakeIPT) { fake.chains["filter/"+chainForward][0][3] = "eth9" },
		"ACCEPT rule gone":   func(fake *fakeIPT) { fake.chains["filter/"+chainForward] = nil },
	} {
		t.Run(name, func(t *testing.T) {
			f, _, fake6 := newTest6(t)
			p := pin(25565, "2a02:8000:77:1::10")
			p.Description = forward.Tag("t", "mc") // reconcile's config
			if _, err := f.Add(context.Background(), p); err != nil {
				t.Fatal(err)
			}
			want := fake6.snapshot()
			breakIt(fake6)
			ms, err := f.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if i := slices.IndexFunc(ms, func(m forward.Mapping) bool { return m.Key == p.Key }); i >= 0 && ms[i].Enabled {
				t.Errorf("List = %+v; want it disabled or absent", ms[i])
			}
			if res := reconcile(t, f, []forward.Mapping{p}); res.Failed() != 0 {
				t.Fatal(firstErr(res))
			}
			if got := listOne(t, f, p.Key); !got.Enabled || fake6.snapshot() != want {
				t.Errorf("after the apply: %+v\n%s\nwant the tables as first written:\n%s", got, fake6.snapshot(), want)
			}
		})
	}
}

// What an ip6tables pinhole cannot say, and a router that forwards no
// IPv6, are refused before any write, with the reason.
func TestPinholeRefused(t *testing.T) {
	v4host := pin(25565, "2a02:8000:77:1::10")
	v4host.InternalHost = netip.MustParseAddr("192.168.77.10")
	translated := pin(25565, "2a02:8000:77:1::10")
	translated.InternalPort = 25566
	for _, tc := range []struct {
		name    string
		m       forward.Mapping
		fwdOff  bool
		wantErr string
	}{
		{"an IPv4 host", v4host, false, "global IPv6 address"},
		{"a link-local host", pin(25565, "fe80::10"), false, "global IPv6 address"},
		{"another internal port", translated, false, "no port translation"},
		{"IPv6 forwarding off", pin(25565, "2a02:8000:77:1::10"), true, "net.ipv6.conf.all.forwarding=0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _, fake6 := newTest6(t)
			writes := fake6.writes
			if tc.fwdOff {
				f.sys.readFile = func(string) ([]byte, error) { return []byte("0\n"), nil }
			}
			if _, err := f.Add(context.Background(), tc.m); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Add = %v; want an error saying %q", err, tc.wantErr)
			}
			if fake6.writes != writes {
				t.Errorf("a refused pinhole wrote %d times", fake6.writes-writes)
			}
		})
	}
}

// Properties.IPv6 says whether the IPv6 side is there; without it an IPv6
// Add says why.
func TestPinholeProperties(t *testing.T) {
	f, _, _ := newTest6(t)
	if p := f.Properties(); !p.IPv6 || !slices.Equal(p.Protocols, []string{"iptables-nft", "ip6tables-nft"}) {
		t.Errorf("with ip6tables: IPv6 %v, Protocols %q", p.IPv6, p.Protocols)
	}
	f, _ = newTest(t)
	if f.Properties().IPv6 {
		t.Error("without ip6tables: Properties.IPv6")
	}
	if _, err := f.Add(context.Background(), pin(25565, "2a02:8000:77:1::10")); err == nil || !strings.Contains(err.Error(), "family: ipv4") {
		t.Errorf("Add of a pinhole without ip6tables = %v; want the way out", err)
	}
}

// The IPv6 side needs an ip6tables of iptables' flavour: rules of the
// other would be invisible to each other's save.
func TestNewTables6Refusals(t *testing.T) {
	missing := testSystem()
	missing.lookPath = func(cmd string) (string, error) {
		if cmd == "ip6tables" {
			return "", errors.New("not found")
		}
		return "/usr/sbin/" + cmd, nil
	}
	other := testSystem()
	other.version = func(cmd string) (string, error) {
		if cmd == "ip6tables" {
			return "ip6tables v1.8.9 (legacy)\n", nil
		}
		return "iptables v1.8.9 (nf_tables)\n", nil
	}
	noKernel := testSystem()
	noKernel.readFile = func(string) ([]byte, error) { return nil, os.ErrNotExist }
	for name, sys := range map[string]system{"no ip6tables": missing, "another flavour": other, "no IPv6 in the kernel": noKernel} {
		if t6, err := newTables6(sys, "nf_tables"); t6 != nil || err == nil {
			t.Errorf("%s: newTables6 = %v, %v; want none, and why", name, t6, err)
		}
	}
}
