package upnp

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// testPinholes is an IGD's IPv6 side talking to fake f, with its records
// in dir ("" keeps them in memory), for the LAN host labLANHost6; the
// clock is *now.
func testPinholes(t *testing.T, f *fakeFirewall, dir string, now *time.Time) *pinholes {
	t.Helper()
	gw := netip.MustParseAddr("127.0.0.1")
	path := ""
	if dir != "" {
		path = pinholePath(dir, gw)
	}
	rec, err := openPinholeRecords(path, gw)
	if err != nil {
		t.Fatal(err)
	}
	p := newPinholes(true, "uuid:x", nil, forward.SelfIPv6{Addr: labLANHost6, Interface: "eth0"}, rec)
	p.find = func(ctx context.Context) (*url.URL, *url.URL, error) {
		c, err := NewPinholeClient(ctx, f.url, 0)
		if err != nil {
			return nil, nil, err
		}
		return nil, c.control, nil
	}
	// The fake is on loopback: the client cannot send from the LAN
	// host's address here, so it sends from any.
	p.client = func(control *url.URL, _ netip.Addr) *PinholeClient {
		return newPinholeClientAt(control, netip.Addr{}, 0)
	}
	p.isLocal = func(a netip.Addr) bool { return a == labLANHost6 }
	p.now = func() time.Time { return *now }
	return p
}

// pinhole6 is the IPv6 mapping of rule mc on port for the LAN host.
func pinhole6(port uint16, lease time.Duration) forward.Mapping {
	return forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: port, Family: forward.IPv6},
		InternalHost: labLANHost6, InternalPort: port, Description: "pf:test:mc", Lease: lease, Enabled: true}
}

// actions counts the fake's requests of action.
func (f *fakeFirewall) actions(action string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return countIn(f.requests, action)
}

// TestPinholesRecordRenewClose: a pinhole opened is recorded with its
// UniqueID and listed from the record; opening it again renews it under
// the same ID; a lookup asks about it with CheckPinholeWorking, which
// changes nothing, or on a router without that action renews it with
// UpdatePinhole; closing it deletes
// it by ID and drops the record, and a second close sends nothing. The
// records survive in the state file.
func TestPinholesRecordRenewClose(t *testing.T) {
	f := newFakeFirewall(t)
	dir := t.TempDir()
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	p := testPinholes(t, f, dir, &now)
	got, err := p.add(testCtx(t), pinhole6(25565, time.Hour))
	if err != nil || got.Lease != time.Hour {
		t.Fatalf("add = %+v, %v; want granted for an hour", got, err)
	}
	again, err := p.add(testCtx(t), pinhole6(25565, time.Hour))
	if err != nil || len(f.holes) != 1 {
		t.Fatalf("add again = %v, %v; the router holds %d pinholes, want 1", again, err, len(f.holes))
	}
	now = now.Add(10 * time.Minute)
	reopened := testPinholes(t, f, dir, &now)
	listed := reopened.list()
	if len(listed) != 1 || listed[0].Key != got.Key || listed[0].Lease != 50*time.Minute || listed[0].Description != "pf:test:mc" {
		t.Fatalf("list from the state file = %+v; want tcp6/25565 with 50m left", listed)
	}
	if _, found, err := reopened.lookup(testCtx(t), got.Key); !found || err != nil || f.actions("CheckPinholeWorking") != 1 || f.actions("UpdatePinhole") != 0 {
		t.Errorf("lookup = %v, %v after %d CheckPinholeWorking, %d UpdatePinhole; want found after one check, no renewal",
			found, err, f.actions("CheckPinholeWorking"), f.actions("UpdatePinhole"))
	}
	f.noCheck = true
	if _, found, err := reopened.lookup(testCtx(t), got.Key); !found || err != nil || f.actions("UpdatePinhole") != 1 {
		t.Errorf("lookup without CheckPinholeWorking = %v, %v after %d UpdatePinhole; want found after one", found, err, f.actions("UpdatePinhole"))
	}
	if err := reopened.remove(testCtx(t), got); err != nil || len(f.holes) != 0 || len(reopened.list()) != 0 {
		t.Fatalf("remove: %v; router holds %d, records %v", err, len(f.holes), reopened.list())
	}
	if err := reopened.remove(testCtx(t), got); err != nil || f.actions("DeletePinhole") != 1 {
		t.Errorf("second remove: %v after %d DeletePinhole, want none more", err, f.actions("DeletePinhole"))
	}
}

// TestPinholesPermanentAndExpired: a permanent rule gets the day the
// service allows, and a record whose lease ran out is not listed.
func TestPinholesPermanentAndExpired(t *testing.T) {
	f := newFakeFirewall(t)
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	p := testPinholes(t, f, "", &now)
	got, err := p.add(testCtx(t), pinhole6(25565, 0))
	if err != nil || got.Lease != maxPinholeLease || f.hole(1)["LeaseTime"] != "86400" {
		t.Fatalf("permanent add = %+v, %v (lease sent %q); want a day", got, err, f.hole(1)["LeaseTime"])
	}
	now = now.Add(maxPinholeLease + time.Second)
	if l := p.list(); len(l) != 0 {
		t.Errorf("an expired record is listed: %+v", l)
	}
}

// TestPinholesGoneAfterReboot: the router restarts (pinholes gone, IDs
// from 1 again); the lookup's CheckPinholeWorking gets NoSuchEntry, which is
// not found, and every record of the gateway is forgotten, so the next
// pass opens each again under its current ID.
func TestPinholesGoneAfterReboot(t *testing.T) {
	f := newFakeFirewall(t)
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	p := testPinholes(t, f, t.TempDir(), &now)
	for _, port := range []uint16{25565, 25566} {
		if _, err := p.add(testCtx(t), pinhole6(port, time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	f.holes, f.next = map[int]map[string]string{}, 1
	f.mu.Unlock()
	_, found, err := p.lookup(testCtx(t), pinhole6(25566, 0).Key)
	if found || err != nil || len(p.list()) != 0 {
		t.Fatalf("lookup after the reboot = %v, %v, records %v; want not found and no records", found, err, p.list())
	}
	if _, err := p.add(testCtx(t), pinhole6(25566, time.Hour)); err != nil {
		t.Fatal(err)
	}
	if rec, _ := p.rec.get(pinhole6(25566, 0).Key); rec.ID != 1 || f.hole(1)["InternalPort"] != "25566" {
		t.Errorf("re-opened pinhole recorded as %d, want the router's new ID 1", rec.ID)
	}
}

// TestPinholesOtherHostRefused: a pinhole for an address that is not this
// host's is refused before any request, saying what can open it.
func TestPinholesOtherHostRefused(t *testing.T) {
	f := newFakeFirewall(t)
	now := time.Now()
	p := testPinholes(t, f, "", &now)
	m := pinhole6(25565, time.Hour)
	m.InternalHost = netip.MustParseAddr("2a02:8000:77:1::11")
	_, err := p.add(testCtx(t), m)
	if !errors.Is(err, forward.ErrNotAuthorized) || !strings.Contains(err.Error(), "secure mode") ||
		!strings.Contains(err.Error(), "backend pcp") || !strings.Contains(err.Error(), "iptables") {
		t.Errorf("pinhole for another host: %v; want a secure-mode refusal naming pcp and iptables", err)
	}
	if len(f.requests) != 0 {
		t.Errorf("the refused pinhole reached the router: %v", f.requests)
	}
}

// TestPinholesFirewallStatus: a router whose IPv6 firewall is off needs no
// pinhole (granted with a note, and looked up at no cost); one that allows
// no pinholes is a refusal naming the setting.
func TestPinholesFirewallStatus(t *testing.T) {
	f := newFakeFirewall(t)
	f.refuse, f.enabled = codeFirewallDisabled, false
	now := time.Now()
	p := testPinholes(t, f, "", &now)
	got, err := p.add(testCtx(t), pinhole6(25565, time.Hour))
	notes := p.warnings()
	if err != nil || got.Key.Family != forward.IPv6 || len(notes) != 1 || !strings.Contains(notes[0], "firewall is off") {
		t.Fatalf("add with the firewall off = %+v, %v, notes %q; want granted with a note", got, err, notes)
	}
	before := len(f.requests)
	if _, found, err := p.lookup(testCtx(t), got.Key); !found || err != nil || len(f.requests) != before {
		t.Errorf("lookup of an open port without pinhole = %v, %v after %d requests; want found, none", found, err, len(f.requests)-before)
	}
	f.refuse, f.enabled, f.inbound = codeInboundPinholeForbidden, true, false
	_, err = p.add(testCtx(t), pinhole6(25566, time.Hour))
	if !errors.Is(err, forward.ErrNotAuthorized) || soapCode(err) != codeInboundPinholeForbidden || !strings.Contains(err.Error(), `enable "allow IPv6 pinholes"`) {
		t.Errorf("add where pinholes are not allowed: %v; want a refusal naming the setting", err)
	}
}

// TestPinholeRecordsHygiene: a corrupt file is set aside with a warning,
// and a record portfwd could not act on is dropped with one.
func TestPinholeRecordsHygiene(t *testing.T) {
	dir := t.TempDir()
	gw := netip.MustParseAddr("192.168.77.1")
	path := pinholePath(dir, gw)
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := openPinholeRecords(path, gw)
	if err != nil || len(r.warnings) != 1 || !strings.Contains(r.warnings[0], "set aside") {
		t.Fatalf("corrupt file: %v, warnings %q", err, r.warnings)
	}
	if _, err := os.Stat(path + ".corrupt"); err != nil {
		t.Errorf("not set aside: %v", err)
	}
	body := `{"format_version":1,"gateway":"192.168.77.1","pinholes":[
	 {"Protocol":"tcp","ExternalPort":25565,"Family":"ipv6","InternalHost":"2a02:8000:77:1::10","InternalPort":25565,"unique_id":3},
	 {"Protocol":"tcp","ExternalPort":25566,"InternalHost":"192.168.77.10","InternalPort":25566,"unique_id":4}]}`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err = openPinholeRecords(path, gw)
	if err != nil || len(r.file.Pinholes) != 1 || r.file.Pinholes[0].ID != 3 || len(r.warnings) != 1 {
		t.Errorf("mixed file: %v, kept %+v, warnings %q; want the IPv6 record kept, the IPv4 one dropped", err, r.file.Pinholes, r.warnings)
	}
	if filepath.Dir(path) != dir || !strings.HasPrefix(filepath.Base(path), "upnp-pinholes-192.168.77.1") {
		t.Errorf("records path %s", path)
	}
}

// TestIGDIPv6Properties: the IGD opens IPv6 pinholes only where the
// router serves WANIPv6FirewallControl and this host has an IPv6
// address, and the cache remembers the IPv6 side.
func TestIGDIPv6Properties(t *testing.T) {
	self6 := forward.SelfIPv6{Addr: labLANHost6, Interface: "eth0"}
	for _, c := range []struct {
		desc string
		self forward.SelfIPv6
		want bool
	}{{"igd2-ipv6-rootdesc.xml", self6, true}, {"igd2-ipv6-rootdesc.xml", forward.SelfIPv6{Why: "none"}, false}, {"igd2-rootdesc.xml", self6, false}} {
		f := newFakeIGD(t, c.desc)
		opts := loopbackOptions("127.0.0.1", newSSDPResponder(t, f.rootURL()), nil)
		opts.self6, opts.CacheDir = &c.self, t.TempDir()
		g, err := Discover(testCtx(t), opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := g.Properties().IPv6; got != c.want {
			t.Errorf("%s, self6 %v: Properties().IPv6 = %v, want %v", c.desc, c.self.Addr, got, c.want)
		}
		_, err = g.Add(testCtx(t), pinhole6(25565, time.Hour))
		if var6 := (*forward.NoIPv6Error)(nil); !c.want && !errors.As(err, &var6) {
			t.Errorf("%s: Add of a pinhole without IPv6: %v, want a NoIPv6Error", c.desc, err)
		}
		if !c.want {
			continue
		}
		root6, _ := url.Parse("http://[2a02:8000:77:1::1]:5000/rootDesc.xml")
		control6, _ := url.Parse("http://[2a02:8000:77:1::1]:5000/ctl/IP6FCtl")
		g.v6.root6, g.v6.control6 = root6, control6
		g.v6.remember()
		again, err := Discover(testCtx(t), opts)
		if err != nil || !again.Properties().IPv6 || again.v6.control6 == nil || again.v6.control6.String() != control6.String() || !again.v6.cached {
			t.Errorf("cached IGD: %v, IPv6 %v, control6 %v; want the remembered IPv6 control URL", err, again.Properties().IPv6, again.v6.control6)
		}
	}
}

// TestDefaultGateway6 reads the IPv6 default route's next hop.
func TestDefaultGateway6(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ipv6_route")
	routes := "2a020800007700010000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n" +
		"00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0\n"
	if err := os.WriteFile(path, []byte(routes), 0o600); err != nil {
		t.Fatal(err)
	}
	if gw, ok := defaultGateway6(path); !ok || gw != netip.MustParseAddr("fe80::1") {
		t.Errorf("defaultGateway6 = %v, %v; want fe80::1", gw, ok)
	}
	if _, ok := defaultGateway6(filepath.Join(t.TempDir(), "none")); ok {
		t.Error("a missing route table gave a gateway")
	}
}

// TestPinholesRouterRestarted: a router up for less time than a recorded
// pinhole has existed restarted since, so the records are forgotten; one
// up for longer keeps them.
func TestPinholesRouterRestarted(t *testing.T) {
	f := newFakeFirewall(t)
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	p := testPinholes(t, f, "", &now)
	if _, err := p.add(testCtx(t), pinhole6(25565, time.Hour)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(10 * time.Minute)
	p.restartedBefore(time.Hour)
	if len(p.list()) != 1 || len(p.warnings()) != 0 {
		t.Fatalf("a router up for an hour lost the records of a pinhole 10 minutes old: %v", p.list())
	}
	p.restartedBefore(5 * time.Minute)
	if notes := p.warnings(); len(p.list()) != 0 || len(notes) != 1 || !strings.Contains(notes[0], "restarted") {
		t.Errorf("a router up for 5 minutes kept the records of a pinhole 10 minutes old: %v, notes %q", p.list(), notes)
	}
}

// TestPinholesSeeOtherRuns: a daemon keeps its IGD between passes, while
// a portfwd apply of another config opens pinholes on the same router;
// each sees the other's records, and neither save drops the other's.
func TestPinholesSeeOtherRuns(t *testing.T) {
	f := newFakeFirewall(t)
	dir := t.TempDir()
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	daemon := testPinholes(t, f, dir, &now)
	if _, err := daemon.add(testCtx(t), pinhole6(25565, time.Hour)); err != nil {
		t.Fatal(err)
	}
	apply := testPinholes(t, f, dir, &now)
	other := pinhole6(8080, time.Hour)
	other.Description = "pf:web:http"
	if _, err := apply.add(testCtx(t), other); err != nil {
		t.Fatal(err)
	}
	if l := daemon.list(); len(l) != 2 {
		t.Fatalf("the daemon sees %d pinholes, want the apply's too: %+v", len(l), l)
	}
	if _, err := daemon.add(testCtx(t), pinhole6(25565, time.Hour)); err != nil {
		t.Fatal(err)
	}
	if l := testPinholes(t, f, dir, &now).list(); len(l) != 2 {
		t.Errorf("after the daemon's renewal the file holds %d pinholes, want 2: %+v", len(l), l)
	}
}

// TestPinholesStillThere: a listing asks the router about one recorded
// pinhole with CheckPinholeWorking, which changes nothing: 709 (no
// traffic) is there; after a reboot it is gone, and every record is
// forgotten so that the pass opens them again.
func TestPinholesStillThere(t *testing.T) {
	f := newFakeFirewall(t)
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	p := testPinholes(t, f, "", &now)
	for _, port := range []uint16{25565, 25566} {
		if _, err := p.add(testCtx(t), pinhole6(port, time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if !p.stillThere(testCtx(t)) || len(p.list()) != 2 || f.actions("CheckPinholeWorking") != 1 {
		t.Fatalf("before the reboot: records %v after %d CheckPinholeWorking; want 2 kept after 1", p.list(), f.actions("CheckPinholeWorking"))
	}
	f.mu.Lock()
	f.holes, f.next = map[int]map[string]string{}, 1
	f.mu.Unlock()
	if !p.stillThere(testCtx(t)) || len(p.list()) != 0 {
		t.Errorf("after the reboot: records %v; want none", p.list())
	}
	if notes := p.warnings(); len(notes) != 1 || !strings.Contains(notes[0], "no longer has pinhole") {
		t.Errorf("notes %q", notes)
	}
	if n := f.actions("AddPinhole") + f.actions("UpdatePinhole"); n != 2 {
		t.Errorf("checking sent %d pinhole-opening requests beyond the 2 adds", n-2)
	}
}

// TestFindRoot6Direct: with no SSDP answer, the router's description is
// read from the IPv6 default gateway at the IPv4 description's port and
// path, and taken only when its UDN is the IPv4 IGD's.
func TestFindRoot6Direct(t *testing.T) {
	desc := string(testdata(t, "igd2-ipv6-rootdesc.xml"))
	srv := newServerOn(t, "::1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(desc)) }))
	u, _ := url.Parse(srv.URL)
	root4, _ := url.Parse("http://127.0.0.1:" + u.Port() + "/rootDesc.xml")
	routes := filepath.Join(t.TempDir(), "ipv6_route")
	line := "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000001 00000400 00000001 00000000 00000003     lo\n"
	if err := os.WriteFile(routes, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		udn string
		ok  bool
	}{{"uuid:5f0a7c1e-7061-4f72-8677-e53d1c000000", true}, {"uuid:another-router", false}} {
		p := newPinholes(true, c.udn, root4, forward.SelfIPv6{Addr: netip.MustParseAddr("::1"), Interface: "lo"}, &pinholeRecords{})
		p.routes = routes
		root, control, err := p.findRoot6(testCtx(t))
		switch {
		case c.ok && (err != nil || root.Host != u.Host || control.Path != "/ctl/IP6FCtl"):
			t.Errorf("UDN %s: root %v, control %v, %v; want the description on [::1]", c.udn, root, control, err)
		case !c.ok && (err == nil || !strings.Contains(err.Error(), "is another device")):
			t.Errorf("UDN %s: %v, %v; want the other device refused", c.udn, root, err)
		}
	}
}
