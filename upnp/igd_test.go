package upnp

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

var self = netip.MustParseAddr("127.0.0.1")

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newTestIGD(t *testing.T, f *fakeIGD) *IGD {
	t.Helper()
	g, err := NewIGD(testCtx(t), f.rootURL())
	if err != nil {
		t.Fatalf("NewIGD: %v", err)
	}
	return g
}

func mapping(port uint16, host string, lease time.Duration) forward.Mapping {
	return forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: port},
		InternalHost: netip.MustParseAddr(host), InternalPort: port, Description: (forward.LegacyTagPrefix + "mc"),
		Lease: lease, Enabled: true}
}

// TestNewIGDPicksService: the service is chosen by type, whatever the
// device version, WANIPConnection:2 > WANIPConnection:1 > WANPPPConnection:1.
func TestNewIGDPicksService(t *testing.T) {
	tests := []struct {
		desc, device, service string
		permanent             bool
	}{
		{"igd2-rootdesc.xml", "InternetGatewayDevice:2", "WANIPConnection:2", false},
		{"igd1-rootdesc.xml", "InternetGatewayDevice:1", "WANIPConnection:1", true},
		{"igd1-ppp-only-rootdesc.xml", "InternetGatewayDevice:1", "WANPPPConnection:1", true},
		{"igd1-ppp-and-ip-rootdesc.xml", "InternetGatewayDevice:1", "WANIPConnection:1", true},
		{"igd1-device-wanipconn2-rootdesc.xml", "InternetGatewayDevice:1", "WANIPConnection:2", false},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			g := newTestIGD(t, newFakeIGD(t, tt.desc))
			p := g.Properties()
			want := []string{"UPnP " + tt.device, tt.service}
			if p.Name != "upnp" || !slices.Equal(p.Protocols, want) || p.PermanentLeases != tt.permanent || p.ThirdParty != forward.ThirdPartyIfAllowed {
				t.Errorf("Properties = %+v; want protocols %v, permanent %v", p, want, tt.permanent)
			}
			if g.LocalAddr() != self {
				t.Errorf("LocalAddr = %v, want %v", g.LocalAddr(), self)
			}
			if a, err := g.ExternalAddr(testCtx(t)); err != nil || a != netip.MustParseAddr("50.60.70.1") {
				t.Errorf("ExternalAddr = %v, %v", a, err)
			}
		})
	}
}

func TestNewIGDWithoutPortMappingService(t *testing.T) {
	_, err := NewIGD(testCtx(t), newFakeIGD(t, "no-wanconn-rootdesc.xml").rootURL())
	if err == nil || !strings.Contains(err.Error(), "no WANIPConnection or WANPPPConnection") {
		t.Fatalf("NewIGD = %v; want a no-service error", err)
	}
}

// TestAddQuirks feeds each AddPortMapping fault routers send and checks
// what Add makes of it.
func TestAddQuirks(t *testing.T) {
	tests := []struct {
		name      string
		desc      string
		setup     func(f *fakeIGD)
		m         forward.Mapping
		wantLease time.Duration
		wantIs    error
		wantCode  int
		wantText  string
		wantAdds  int
	}{
		{name: "permanent on IGD:1", m: mapping(25565, "127.0.0.1", 0), wantAdds: 1},
		{name: "finite lease", m: mapping(25565, "127.0.0.1", time.Hour), wantLease: time.Hour, wantAdds: 1},
		{name: "IGD:2 caps a permanent lease at a week", desc: "igd2-rootdesc.xml",
			m: mapping(25565, "127.0.0.1", 0), wantLease: 604800 * time.Second, wantAdds: 1},
		{name: "725 only permanent leases: retried permanent", setup: func(f *fakeIGD) { f.finite = "soap-725-only-permanent.xml" },
			m: mapping(25565, "127.0.0.1", time.Hour), wantLease: 0, wantAdds: 2},
		{name: "402 on a finite lease: retried permanent", setup: func(f *fakeIGD) { f.finite = "soap-402-invalid-args.xml" },
			m: mapping(25565, "127.0.0.1", time.Hour), wantLease: 0, wantAdds: 2},
		{name: "held by another client: refused before AddPortMapping", setup: func(f *fakeIGD) {
			f.entries = []fakeEntry{{proto: "TCP", ext: 25565, port: 25565, client: "192.168.77.11", desc: "upnpc", enabled: true}}
		}, m: mapping(25565, "127.0.0.1", 0), wantIs: forward.ErrConflict,
			wantText: `already forwarded to 192.168.77.11:25565 ("upnpc")`, wantAdds: 0},
		{name: "held by portfwd on another host: refused before AddPortMapping", setup: func(f *fakeIGD) {
			f.secure = false
			f.entries = []fakeEntry{{proto: "TCP", ext: 25565, port: 25565, client: "192.168.77.11", desc: "portfwd:mc", enabled: true}}
		}, m: mapping(25565, "127.0.0.1", 0), wantIs: forward.ErrConflict,
			wantText: `already forwarded to 192.168.77.11:25565 ("portfwd:mc")`, wantAdds: 0},
		{name: "same host, foreign description: refused before AddPortMapping", setup: func(f *fakeIGD) {
			f.entries = []fakeEntry{{proto: "TCP", ext: 25565, port: 25565, client: "127.0.0.1", desc: "game", enabled: true}}
		}, m: mapping(25565, "127.0.0.1", 0), wantIs: forward.ErrConflict, wantText: `("game")`, wantAdds: 0},
		{name: "718 from secure mode for another host", m: mapping(25565, "192.168.77.11", 0),
			wantIs: forward.ErrNotAuthorized, wantCode: 718, wantText: "UPnP secure mode); run portfwd on 192.168.77.11", wantAdds: 1},
		{name: "718 with lower-case UPnPError detail", setup: func(f *fakeIGD) { f.addFault = "soap-718-lowercase-upnperror.xml" },
			m: mapping(25565, "192.168.77.11", 0), wantIs: forward.ErrNotAuthorized, wantCode: 718, wantAdds: 1},
		{name: "606 for this host: UPnP rules", setup: func(f *fakeIGD) { f.addFault = "soap-606-not-authorized.xml" },
			m: mapping(80, "127.0.0.1", 0), wantIs: forward.ErrNotAuthorized, wantCode: 606, wantText: "the gateway refused tcp/80 to this host (127.0.0.1): allow it in the router's UPnP settings", wantAdds: 1},
		{name: "606 for another host: secure mode", setup: func(f *fakeIGD) { f.addFault = "soap-606-not-authorized.xml" },
			m: mapping(8080, "192.168.77.11", 0), wantIs: forward.ErrNotAuthorized, wantCode: 606, wantText: "run portfwd on 192.168.77.11", wantAdds: 1},
		{name: "501 behind carrier-grade NAT", setup: func(f *fakeIGD) { f.addFault = "soap-501-action-failed.xml"; f.extIP = "100.64.12.34" },
			m: mapping(25565, "127.0.0.1", 0), wantIs: forward.ErrDoubleNAT, wantCode: 501, wantText: "WAN address is 100.64.12.34", wantAdds: 1},
		{name: "501 behind another router", setup: func(f *fakeIGD) { f.addFault = "soap-501-action-failed.xml"; f.extIP = "192.168.0.2" },
			m: mapping(25565, "127.0.0.1", 0), wantIs: forward.ErrDoubleNAT, wantCode: 501, wantText: "upstream router", wantAdds: 1},
		{name: "501 with a public WAN address", setup: func(f *fakeIGD) { f.addFault = "soap-501-action-failed.xml" },
			m: mapping(25565, "127.0.0.1", 0), wantCode: 501, wantText: "check the router's log", wantAdds: 1},
		{name: "724 same port values", setup: func(f *fakeIGD) { f.addFault = "soap-724-same-port-values.xml" },
			m: mapping(25565, "127.0.0.1", 0), wantCode: 724, wantText: "set internal_port to 25565", wantAdds: 1},
		{name: "716 wildcard external port", setup: func(f *fakeIGD) { f.addFault = "soap-716-wildcard-ext-port.xml" },
			m: mapping(25565, "127.0.0.1", 0), wantCode: 716, wantText: "external port 0", wantAdds: 1},
		{name: "727 external port only wildcard", setup: func(f *fakeIGD) { f.addFault = "soap-727-ext-port-only-wildcard.xml" },
			m: mapping(25565, "127.0.0.1", 0), wantCode: 727, wantText: "in the router's web page", wantAdds: 1},
		{name: "728 table full", setup: func(f *fakeIGD) { f.addFault = "soap-728-no-port-maps.xml" },
			m: mapping(25565, "127.0.0.1", 0), wantCode: 728, wantText: "table is full", wantAdds: 1},
		{name: "729 conflict with other mechanisms", setup: func(f *fakeIGD) { f.addFault = "soap-729-conflict-other-mechanisms.xml" },
			m: mapping(25565, "127.0.0.1", 0), wantIs: forward.ErrConflict, wantCode: 729, wantAdds: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			desc := tt.desc
			if desc == "" {
				desc = "igd1-rootdesc.xml"
			}
			f := newFakeIGD(t, desc)
			if tt.setup != nil {
				tt.setup(f)
			}
			got, err := newTestIGD(t, f).Add(testCtx(t), tt.m)
			checkAddError(t, err, tt.wantIs, tt.wantCode, tt.wantText)
			if err == nil && (got.Lease != tt.wantLease || got.Key != tt.m.Key || got.InternalHost != tt.m.InternalHost) {
				t.Errorf("granted %+v lease %v; want lease %v", got, got.Lease, tt.wantLease)
			}
			if n := f.count("AddPortMapping"); n != tt.wantAdds {
				t.Errorf("%d AddPortMapping calls, want %d (%v)", n, tt.wantAdds, f.actions)
			}
		})
	}
}

func checkAddError(t *testing.T, err, wantIs error, wantCode int, wantText string) {
	t.Helper()
	if wantIs == nil && wantCode == 0 {
		if err != nil {
			t.Fatalf("Add: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatal("Add succeeded, want an error")
	}
	if wantIs != nil && !errors.Is(err, wantIs) {
		t.Errorf("Add error %q is not %v", err, wantIs)
	}
	if wantCode != 0 && soapCode(err) != wantCode {
		t.Errorf("Add error %q: SOAP code %d, want %d", err, soapCode(err), wantCode)
	}
	if !strings.Contains(err.Error(), wantText) || !strings.HasPrefix(err.Error(), "adding mapping tcp/") {
		t.Errorf("Add error %q; want it to start with the key and contain %q", err, wantText)
	}
}

func (f *fakeIGD) count(action string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return countIn(f.actions, action)
}

// countIn is how many of a fake's logged requests are action.
func countIn(log []string, action string) int {
	n := 0
	for _, a := range log {
		if a == action {
			n++
		}
	}
	return n
}

// TestConflictHolderNamed checks the holder a 718 reports.
func TestConflictHolderNamed(t *testing.T) {
	f := newFakeIGD(t, "igd2-rootdesc.xml")
	f.secure = false
	f.entries = []fakeEntry{{proto: "UDP", ext: 19132, port: 19133, client: "192.168.77.11", desc: "bedrock", enabled: true, lease: 100}}
	m := mapping(19132, "127.0.0.1", 0)
	m.Protocol = forward.UDP
	_, err := newTestIGD(t, f).Add(testCtx(t), m)
	var ce *forward.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("Add = %v; want *forward.ConflictError", err)
	}
	want := forward.Mapping{Key: m.Key, InternalHost: netip.MustParseAddr("192.168.77.11"), InternalPort: 19133,
		Description: "bedrock", Lease: 100 * time.Second, Enabled: true}
	if ce.Holder != want {
		t.Errorf("holder = %+v, want %+v", ce.Holder, want)
	}
}

// TestListEndOfTable: the walk stops at 713, and at 714 or 402 from quirky
// routers.
func TestListEndOfTable(t *testing.T) {
	for _, end := range []string{"soap-713-array-index-invalid.xml", "soap-714-no-such-entry.xml", "soap-402-invalid-args.xml"} {
		t.Run(end, func(t *testing.T) {
			f := newFakeIGD(t, "igd1-rootdesc.xml")
			f.listEnd = end
			f.entries = []fakeEntry{
				{proto: "TCP", ext: 25565, port: 25565, client: "192.168.77.10", desc: "portfwd:mc", enabled: true},
				{proto: "UDP", ext: 27015, port: 27016, client: "192.168.77.11", desc: "steam", lease: 3600},
			}
			got, err := newTestIGD(t, f).List(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			want := []forward.Mapping{
				{Key: forward.Key{Protocol: forward.TCP, ExternalPort: 25565}, InternalHost: netip.MustParseAddr("192.168.77.10"),
					InternalPort: 25565, Description: "portfwd:mc", Enabled: true},
				{Key: forward.Key{Protocol: forward.UDP, ExternalPort: 27015}, InternalHost: netip.MustParseAddr("192.168.77.11"),
					InternalPort: 27016, Description: "steam", Lease: time.Hour},
			}
			if !slices.Equal(got, want) {
				t.Errorf("List = %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestListOtherFaultIsError(t *testing.T) {
	f := newFakeIGD(t, "igd1-rootdesc.xml")
	f.listEnd = "soap-606-not-authorized.xml"
	if _, err := newTestIGD(t, f).List(testCtx(t)); soapCode(err) != 606 {
		t.Fatalf("List = %v; want the 606", err)
	}
}

func TestDelete(t *testing.T) {
	f := newFakeIGD(t, "igd2-rootdesc.xml")
	g := newTestIGD(t, f)
	m := mapping(25565, "127.0.0.1", 0)
	if _, err := g.Add(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the second Delete meets 714 NoSuchEntryInArray
		if err := g.Delete(testCtx(t), m); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	if len(f.entries) != 0 {
		t.Errorf("entries left: %+v", f.entries)
	}
}

func TestExternalAddrUnusable(t *testing.T) {
	f := newFakeIGD(t, "igd1-rootdesc.xml")
	f.extIP = "0.0.0.0"
	if _, err := newTestIGD(t, f).ExternalAddr(testCtx(t)); err == nil || !strings.Contains(err.Error(), "internet connection") {
		t.Fatalf("ExternalAddr = %v; want an error", err)
	}
}

// TestConformance runs the forward conformance suite against the fake, in
// both service versions.
func TestConformance(t *testing.T) {
	for _, desc := range []string{"igd2-rootdesc.xml", "igd1-rootdesc.xml"} {
		t.Run(desc, func(t *testing.T) {
			var f *fakeIGD
			forwardtest.Run(t, forwardtest.Harness{
				New: func(t *testing.T) forward.Backend {
					f = newFakeIGD(t, desc)
					return newTestIGD(t, f)
				},
				Self: self, Port: 40000, Lease: time.Hour,
				AddForeign: func(_ *testing.T, m forward.Mapping) {
					f.entries = append(f.entries, fakeEntry{proto: "TCP", ext: int(m.ExternalPort), port: int(m.InternalPort),
						client: m.InternalHost.String(), desc: m.Description, enabled: true})
				},
			})
		})
	}
}

func TestIsPublic(t *testing.T) {
	for s, want := range map[string]bool{
		"50.60.70.1": true, "8.8.8.8": true, "10.1.2.3": false, "172.20.0.1": false, "192.168.1.1": false,
		"100.64.0.1": false, "100.127.255.254": false, "100.128.0.1": true, "203.0.113.5": false, "0.0.0.0": false,
		"127.0.0.1": false, "169.254.1.1": false, "2606:4700::1111": true, "fd00::1": false,
	} {
		if got := forward.IsPublic(netip.MustParseAddr(s)); got != want {
			t.Errorf("IsPublic(%s) = %v, want %v", s, got, want)
		}
	}
}

func TestLeaseSeconds(t *testing.T) {
	for d, want := range map[time.Duration]uint32{0: 0, -time.Second: 0, time.Millisecond: 1, time.Hour: 3600,
		1500 * time.Millisecond: 2, 1 << 62: 1<<32 - 1} {
		if got := leaseSeconds(d); got != want {
			t.Errorf("leaseSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}
