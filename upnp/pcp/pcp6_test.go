package pcp

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"net/netip"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

var loopback6 = netip.MustParseAddr("::1")

// newEnv6 is a PCP backend on a gateway that serves PCP on IPv4 (fake)
// and on IPv6 (fake6, on ::1), one clock for both.
func newEnv6(t *testing.T) *env {
	t.Helper()
	e := &env{fake: newFakeGateway(t), fake6: newFakeGatewayAt(t, loopback6), dir: t.TempDir(), open: OpenPCP}
	e.fake6.set(func(f *fakeGateway) { f.clock, f.boot, f.ext = e.fake.clock, e.fake.boot, netip.Addr{} })
	e.b = e.reopen(t)
	return e
}

// pinhole is an IPv6 mapping to this host (::1) on port.
func pinhole(p forward.Protocol, port uint16) forward.Mapping {
	m := mapping(p, port, time.Hour)
	m.Family, m.InternalHost = forward.IPv6, loopback6
	return m
}

// recorded6 is the record on k of the IPv6 server in the file on disk.
func (e *env) recorded6(t *testing.T, k forward.Key) (entry, bool) {
	t.Helper()
	rec, err := OpenRecords(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	return rec.gateway("pcp", loopback6).find(k)
}

// lastMAP6 is the latest MAP the IPv6 server read, with its client IP
// and suggested external address.
func (e *env) lastMAP6(t *testing.T) (pcpMapRequest, netip.Addr, netip.Addr) {
	t.Helper()
	b := e.fake6.last(1)
	if len(b) < pcpHeaderSize+pcpMapSize || b[1] != pcpOpMap {
		t.Fatalf("the IPv6 server's last request is not a MAP: % x", b)
	}
	return e.fake6.lastMAP(1), pcpAddrFrom(b[8:]), decodePCPMap(b[pcpHeaderSize:]).IP
}

// TestPCPIPv6Pinhole: a pinhole is asked of the IPv6 server, from the
// host's address, suggesting it as the external address; it is recorded
// with its family and nonce, listed in the next run, renewed and deleted
// with the same nonce; the IPv4 server hears no MAP of it.
func TestPCPIPv6Pinhole(t *testing.T) {
	e := newEnv6(t)
	if !e.b.Properties().IPv6 {
		t.Fatal("Properties.IPv6 is false with an IPv6 PCP server")
	}
	v4 := e.fake.count()
	m := pinhole(forward.TCP, 25565)
	if got := forwardtest.MustAdd(t, e.b, m); got.Key != m.Key || got.InternalHost != loopback6 {
		t.Errorf("granted %v, want %v", got, m)
	}
	add, client, suggested := e.lastMAP6(t)
	if client != loopback6 || suggested != loopback6 || add.thirdParty.IsValid() || add.suggested != 25565 || add.internal != 25565 {
		t.Errorf("MAP from client %v suggesting %v: %+v", client, suggested, add)
	}
	if !e.fake6.has(key(forward.TCP, 25565)) || e.fake.count() != v4 {
		t.Errorf("the pinhole is not on the IPv6 server, or the IPv4 one was asked (%d requests)", e.fake.count()-v4)
	}
	r, ok := e.recorded6(t, m.Key)
	if !ok || r.Nonce != encodeNonce(add.nonce) || r.Family != forward.IPv6 {
		t.Fatalf("record %+v, %v", r, ok)
	}
	next := e.reopen(t)
	if got, err := next.List(testCtx(t)); err != nil || len(got) != 1 || got[0].Key != m.Key || got[0].InternalHost != loopback6 {
		t.Fatalf("List in the next run = %v, %v", got, err)
	}
	forwardtest.MustAdd(t, next, m)
	if renew, _, _ := e.lastMAP6(t); renew.nonce != add.nonce {
		t.Errorf("renewal nonce %x, want %x", renew.nonce, add.nonce)
	}
	if err := next.Delete(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	if del, _, _ := e.lastMAP6(t); del.nonce != add.nonce || del.lifetime != 0 || e.fake6.has(key(forward.TCP, 25565)) {
		t.Errorf("delete %+v left the pinhole", del)
	}
	if _, ok := e.recorded6(t, m.Key); ok {
		t.Error("the deleted pinhole is still recorded")
	}
}

// TestPCPDualSameNumber: a forward and a pinhole of one port are two
// mappings on two servers; deleting one leaves the other.
func TestPCPDualSameNumber(t *testing.T) {
	e := newEnv6(t)
	v4, v6 := mapping(forward.TCP, 25565, time.Hour), pinhole(forward.TCP, 25565)
	forwardtest.MustAdd(t, e.b, v4)
	forwardtest.MustAdd(t, e.b, v6)
	if err := e.b.Delete(testCtx(t), v6); err != nil {
		t.Fatal(err)
	}
	got, err := e.reopen(t).List(testCtx(t))
	if err != nil || len(got) != 1 || got[0].Key != v4.Key || !e.fake.has(v4.Key) {
		t.Errorf("List after deleting the pinhole = %v, %v; want the IPv4 forward alone", got, err)
	}
}

// TestPCPIPv6ThirdParty: a pinhole for another host is asked from this
// host's address with THIRD_PARTY naming the other, as on IPv4.
func TestPCPIPv6ThirdParty(t *testing.T) {
	e := newEnv6(t)
	m := pinhole(forward.UDP, 19132)
	m.InternalHost = netip.MustParseAddr("2001:db8::5")
	forwardtest.MustAdd(t, e.b, m)
	req, client, suggested := e.lastMAP6(t)
	if client != loopback6 || req.thirdParty != m.InternalHost || suggested != m.InternalHost {
		t.Errorf("MAP from %v, THIRD_PARTY %v, suggesting %v; want from ::1 for %v", client, req.thirdParty, suggested, m.InternalHost)
	}
}

// TestPCPIPv4AsksNoIPv6: forwards alone never ask the IPv6 server, and
// List asks it only once it holds a pinhole.
func TestPCPIPv4AsksNoIPv6(t *testing.T) {
	e := newEnv6(t)
	m := mapping(forward.TCP, 25565, time.Hour)
	forwardtest.MustAdd(t, e.b, m)
	if _, err := e.reopen(t).List(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Delete(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	if n := e.fake6.count(); n != 0 {
		t.Errorf("the IPv6 server got %d requests for IPv4 forwards", n)
	}
	forwardtest.MustAdd(t, e.b, pinhole(forward.TCP, 25565))
	before := e.fake6.count()
	if _, err := e.reopen(t).List(testCtx(t)); err != nil || e.fake6.count() != before+1 {
		t.Errorf("List with a pinhole recorded: %v, %d requests to the IPv6 server; want its ANNOUNCE", err, e.fake6.count()-before)
	}
}

// TestPCPIPv6Restart: the IPv6 server's epoch is checked on its own: its
// restart drops the pinholes, with a warning, and keeps the forwards.
func TestPCPIPv6Restart(t *testing.T) {
	e := newEnv6(t)
	v4, v6 := mapping(forward.TCP, 25565, time.Hour), pinhole(forward.TCP, 25565)
	forwardtest.MustAdd(t, e.b, v4)
	forwardtest.MustAdd(t, e.b, v6)
	e.fake.clock.Advance(time.Minute)
	e.fake6.reboot()
	b := e.reopen(t)
	got, err := b.List(testCtx(t))
	if err != nil || len(got) != 1 || got[0].Key != v4.Key {
		t.Errorf("List after the IPv6 server restarted = %v, %v; want the forward alone", got, err)
	}
	if w := b.Warnings(); len(w) != 1 || !strings.Contains(w[0], "the gateway restarted (PCP epoch over IPv6 went from 3600 to 0): every pinhole will be re-created") {
		t.Errorf("warnings %q", w)
	}
}

// TestPCPIPv6Silent: a gateway that does not answer PCP on IPv6 fails the
// pinhole, saying what to do; a silent List keeps the IPv4 forwards
// listed and warns.
func TestPCPIPv6Silent(t *testing.T) {
	e := newEnv6(t)
	e.timeout = 300 * time.Millisecond
	forwardtest.MustAdd(t, e.b, pinhole(forward.TCP, 25566))
	e.fake6.set(func(f *fakeGateway) { f.silent = true })
	b := e.reopen(t)
	_, err := b.Add(testCtx(t), pinhole(forward.TCP, 25565))
	if !errors.Is(err, forward.ErrNoGateway) || !strings.Contains(err.Error(), "PCP did not answer at [::1]:") ||
		!strings.Contains(err.Error(), "try backend upnp (its IPv6 firewall control), or family: ipv4 for the rule") {
		t.Errorf("Add = %v", err)
	}
	got, err := b.List(testCtx(t))
	if err != nil || len(got) != 1 {
		t.Errorf("List = %v, %v; want the recorded pinhole", got, err)
	}
	if w := b.Warnings(); len(w) != 1 || !strings.Contains(w[0], "could not be checked") {
		t.Errorf("warnings %q", w)
	}
}

// TestPCPIPv6Translated: a pinhole granted on another external address
// than the internal one is kept, and the user is told where it is.
func TestPCPIPv6Translated(t *testing.T) {
	e := newEnv6(t)
	e.fake6.set(func(f *fakeGateway) { f.ext = netip.MustParseAddr("2001:db8:1::10") })
	forwardtest.MustAdd(t, e.b, pinhole(forward.TCP, 25565))
	if w := e.b.Warnings(); len(w) != 1 || !strings.Contains(w[0], "on external address 2001:db8:1::10, not on the host's own ::1") ||
		!strings.Contains(w[0], "[2001:db8:1::10]:25565") {
		t.Errorf("warnings %q", w)
	}
	forwardtest.MustAdd(t, e.b, pinhole(forward.TCP, 25565))
	if w := e.b.Warnings(); len(w) != 0 {
		t.Errorf("the renewal warned again: %q", w)
	}
}

// TestPCPWithoutIPv6: without an IPv6 gateway the backend has no IPv6 and
// refuses a pinhole without sending anything.
func TestPCPWithoutIPv6(t *testing.T) {
	e := newEnv(t, OpenPCP) // the test namespace has no IPv6 default route
	if e.b.Properties().IPv6 {
		t.Fatal("Properties.IPv6 without an IPv6 gateway")
	}
	sent := e.fake.count()
	_, err := e.b.Add(testCtx(t), pinhole(forward.TCP, 25565))
	if !errors.Is(err, forward.ErrNoIPv6) || e.fake.count() != sent {
		t.Errorf("Add = %v, %d sent", err, e.fake.count()-sent)
	}
	if err := e.b.Delete(testCtx(t), pinhole(forward.TCP, 25565)); err != nil {
		t.Errorf("Delete = %v", err)
	}
	if _, err := OpenPCP(testCtx(t), loopback6, MemoryRecords(), Options{}); err == nil || !strings.Contains(err.Error(), "Options.Gateway6") {
		t.Errorf("OpenPCP of an IPv6 gateway: %v", err)
	}
}

// TestRecordsFamilies: forwards are written as before families existed
// (no Family field), pinholes with theirs; an entry recorded for a
// gateway of the other family is dropped on reading.
func TestRecordsFamilies(t *testing.T) {
	e := newEnv6(t)
	forwardtest.MustAdd(t, e.b, mapping(forward.TCP, 25565, time.Hour))
	forwardtest.MustAdd(t, e.b, pinhole(forward.TCP, 25565))
	raw, err := os.ReadFile(filepath.Join(e.dir, recordsName))
	if err != nil {
		t.Fatal(err)
	}
	var f recordsFile
	if err := json.Unmarshal(raw, &f); err != nil || len(f.Gateways) != 2 {
		t.Fatalf("%v: %s", err, raw)
	}
	if n := strings.Count(string(raw), `"Family": "ipv6"`); n != 1 || strings.Contains(string(raw), `"ipv4"`) {
		t.Errorf("families written: %s", raw)
	}
	// Swap the gateways' addresses: each entry is then of the wrong family.
	f.Gateways[0].Gateway, f.Gateways[1].Gateway = f.Gateways[1].Gateway, f.Gateways[0].Gateway
	swapped, _ := json.Marshal(f)
	if err := os.WriteFile(filepath.Join(e.dir, recordsName), swapped, 0o600); err != nil {
		t.Fatal(err)
	}
	rec, err := OpenRecords(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	if w := rec.Warnings(); len(w) != 2 || !strings.Contains(w[0], "recorded for an ipv") {
		t.Errorf("warnings %q", w)
	}
}

// TestParseDefaultGateway6: the default route's next hop, with the
// interface as the zone of a link-local one; routes without a next hop,
// on lo, or not default are passed over.
func TestParseDefaultGateway6(t *testing.T) {
	const (
		zero    = "00000000000000000000000000000000"
		onLink  = "2a028000007700010000000000000000 40 " + zero + " 00 " + zero + " 00000100 00000001 00000000 00000001     eth0\n"
		loopDef = zero + " 00 " + zero + " 00 " + zero + " ffffffff 00000001 00000000 00200200       lo\n"
		global  = zero + " 00 " + zero + " 00 2a028000007700010000000000000001 00000400 00000003 00000000 00000003     eth0\n"
		local   = zero + " 00 " + zero + " 00 fe800000000000000000000000000001 00000400 00000003 00000000 00000003     wlan0\n"
	)
	for _, tc := range []struct{ table, want string }{
		{onLink + global, "2a02:8000:77:1::1"},
		{onLink + local + global, "fe80::1%wlan0"},
		{loopDef + onLink, "invalid IP"},
		{"garbage\n" + strings.Replace(global, "2a02", "zz02", 1), "invalid IP"},
	} {
		if got := parseDefaultGateway6(strings.NewReader(tc.table)); got.String() != tc.want {
			t.Errorf("%q: %v, want %s", tc.table, got, tc.want)
		}
	}
}

// TestNATPMPDualRule: a dual rule's run over NAT-PMP makes the IPv4
// forward and refuses the pinhole, saying NAT-PMP has no IPv6 and what to
// use; the gateway hears no request for the pinhole.
func TestNATPMPDualRule(t *testing.T) {
	e := newEnv(t, OpenNATPMP)
	cfg, _, err := forward.Load(testCtx(t), "portfwd.yaml", []byte(
		"rules:\n  - name: mc\n    protocol: tcp\n    external_port: 25565\n    family: dual\n"), forward.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g := &forward.Gateway{Backend: e.b, Self: loopback, Self6: forward.SelfIPv6{Addr: netip.MustParseAddr("2001:db8::10")}}
	r, err := forward.Reconcile(testCtx(t), g, cfg, forward.ReconcileOptions{Mode: forward.ModeApply})
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[forward.Key]error{}
	for _, o := range r.Result.Outcomes {
		outcomes[o.Change.Key] = o.Err
	}
	v4, v6 := key(forward.TCP, 25565), forward.Key{Protocol: forward.TCP, ExternalPort: 25565, Family: forward.IPv6}
	if err, ok := outcomes[v4]; !ok || err != nil || !e.fake.has(v4) {
		t.Errorf("the IPv4 half: %v (planned %v); want it made", err, ok)
	}
	err = outcomes[v6]
	if !errors.Is(err, forward.ErrNoIPv6) || !strings.Contains(err.Error(), "NAT-PMP has no IPv6") || !strings.Contains(err.Error(), "use backend pcp") {
		t.Errorf("the IPv6 half: %v; want NAT-PMP has no IPv6, and what to use", err)
	}
	if n := len(r.Result.Outcomes); n != 2 {
		t.Errorf("%d outcomes, want 2", n)
	}
}

// TestConformsWithIPv6: the conformance suite passes on a PCP backend
// that has an IPv6 side too; its forwards never reach the IPv6 server.
func TestConformsWithIPv6(t *testing.T) {
	var e *env
	forwardtest.Run(t, forwardtest.Harness{
		New: func(t *testing.T) forward.Backend {
			e = newEnv6(t)
			t.Cleanup(func() {
				if n := e.fake6.count(); n != 0 {
					t.Errorf("the IPv6 server got %d requests", n)
				}
			})
			return primed(t, e.b)
		},
		Self: loopback, Other: other, Port: 40000, Lease: time.Hour,
		AddForeign: func(_ *testing.T, m forward.Mapping) {
			m.InternalHost = other
			e.fake.put(m)
		},
	})
}
