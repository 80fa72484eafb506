package probe

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

var (
	host6  = netip.MustParseAddr("2a02:8000:77:1::10") // this host's stable global IPv6 address
	mcKey6 = forward.Key{Protocol: forward.TCP, ExternalPort: 25565, Family: forward.IPv6}
	mc6    = netip.AddrPortFrom(host6, 25565)
)

// mcTarget6 is the IPv6 half of a dual Minecraft rule for self.
func mcTarget6() Target {
	return Target{Rule: "minecraft", Kind: MinecraftJava, External: mcKey6, Internal: mc6, Self: true}
}

// serveMinecraft6 is serveMinecraft over both families: a dual-stack
// socket, answering on this host's IPv6 address too, with the pinhole
// open on a gateway that opens pinholes.
func (w *world) serveMinecraft6() {
	w.serveMinecraft()
	w.bindings[0].Local = netip.MustParseAddrPort("[::]:25565")
	w.answers[mc6] = Result{Answered: true, Info: Info{Name: "A Minecraft Server", Players: 1, MaxPlayers: 20}, Latency: time.Millisecond}
	w.gw.Self6 = host6
	w.gw.Put(forward.Mapping{Key: mcKey6, InternalHost: host6, InternalPort: 25565, Description: "portfwd:minecraft", Enabled: true})
}

// reached6 is a probe server that reaches the server over IPv6 (and over
// IPv4 at the router's address).
func reached6() *fakeVantage {
	return &fakeVantage{observed: wanAddr, answer: Result{Answered: true}, over6: true, answer6: Result{Answered: true, Info: Info{Name: "A Minecraft Server"}}}
}

// refused6 is a probe server that reaches nothing over IPv6.
func refused6() *fakeVantage {
	return &fakeVantage{observed: wanAddr, answer: Result{Answered: true}, over6: true, answer6: Result{Err: ErrNoAnswer}}
}

func (w *world) checker6() *Checker {
	c := w.checker()
	c.Self6 = forward.SelfIPv6{Addr: host6, Interface: "eth0", Why: "the stable address on eth0"}
	return c
}

// stepOf is r's step of layer l.
func stepOf(r Report, l Layer) Step {
	for _, s := range r.Steps {
		if s.Layer == l {
			return s
		}
	}
	return Step{}
}

func TestCheckOverIPv6(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(w *world)
		verdict Verdict
		layer   Layer  // the layer that tells
		status  Status // its status
		has     string // in its message
		fixHas  string // in the report's fix, or the layer's
	}{
		{"reachable over IPv6, from the pinhole's address", func(w *world) {
			w.serveMinecraft6()
			w.outside = reached6()
		}, Reachable, LayerGateway, StatusOK, "pinhole tcp6/25565 -> [2a02:8000:77:1::10]:25565", ""},
		{"bound to 0.0.0.0 only: the most common mistake", func(w *world) {
			w.serveMinecraft6()
			w.bindings[0].Local = netip.MustParseAddrPort("0.0.0.0:25565")
			w.outside = refused6()
		}, Unreachable, LayerLocal, StatusFail, "bound to 0.0.0.0 only, by java (pid 42): an IPv4 socket takes no IPv6, so nothing arrives at [2a02:8000:77:1::10]:25565", "server-ip="},
		{"refused over IPv6 without /proc", func(w *world) {
			w.serveMinecraft6()
			w.bindErr = errors.New("no /proc")
			delete(w.answers, mc6)
			w.outside = refused6()
		}, Unreachable, LayerLocal, StatusFail, "nothing listening on [2a02:8000:77:1::10]:25565 over IPv6", "preferIPv4Stack"},
		{"pinhole missing", func(w *world) {
			w.serveMinecraft6()
			w.gw.Delete(context.Background(), forward.Mapping{Key: mcKey6})
			w.outside = refused6()
		}, Unreachable, LayerGateway, StatusFail, "pinhole missing on the gateway", "family: ipv6 or dual"},
		{"a pinhole portfwd cannot see, yet reached", func(w *world) {
			w.serveMinecraft6()
			w.gw.Delete(context.Background(), forward.Mapping{Key: mcKey6})
			w.outside = reached6()
		}, Reachable, LayerGateway, StatusWarn, "portfwd holds no pinhole for tcp6/25565, yet the probe server reached", ""},
		{"backend without IPv6, reached all the same", func(w *world) {
			w.serveMinecraft6()
			w.gw.Self6 = netip.Addr{}
			w.outside = reached6()
		}, Reachable, LayerGateway, StatusWarn, "the memory backend cannot open or see IPv6 pinholes", ""},
		{"backend without IPv6, not reached", func(w *world) {
			w.serveMinecraft6()
			w.gw.Self6 = netip.Addr{}
			w.outside = refused6()
		}, Unreachable, LayerOutside, StatusFail, "not reachable from outside over IPv6", "backend that opens IPv6 pinholes"},
		{"host firewall drops IPv6", func(w *world) {
			w.serveMinecraft6()
			w.outside = refused6()
		}, Unreachable, LayerOutside, StatusFail, "not reachable from outside over IPv6", "this host's own firewall for IPv6"},
		{"no vantage: nothing inside stands in", func(w *world) {
			w.serveMinecraft6()
		}, Inconclusive, LayerHairpin, StatusSkip, "over IPv6 nothing inside the home", "probe-server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			tt.setup(w)
			r := w.checker6().Check(context.Background(), []Target{mcTarget6()})[0]
			s := stepOf(r, tt.layer)
			if r.Verdict != tt.verdict || s.Status != tt.status || !strings.Contains(s.Message, tt.has) ||
				!strings.Contains(r.Fix+" "+s.Fix, tt.fixHas) {
				t.Errorf("verdict %s; %s %s %q; fix %q / %q\nwant %s; %s %s %q; fix with %q\nsteps: %+v",
					r.Verdict, s.Layer, s.Status, s.Message, r.Fix, s.Fix, tt.verdict, tt.layer, tt.status, tt.has, tt.fixHas, r.Steps)
			}
			if r.VantageErr != nil {
				t.Errorf("VantageErr %v: the probe server was asked", r.VantageErr)
			}
		})
	}
}

// TestCheckAsksOverIPv6FromThePinholesAddress: the probe server is asked
// over IPv6 from the address the pinhole opens (not one the system would
// pick, such as a temporary privacy address), and the report carries the
// address friends use.
func TestCheckAsksOverIPv6FromThePinholesAddress(t *testing.T) {
	w := newWorld()
	w.serveMinecraft6()
	w.outside = reached6()
	reports := w.checker6().Check(context.Background(), []Target{mcTarget(), mcTarget6()})
	if from := w.outside.from6.Load(); from == nil || *from != host6 {
		t.Fatalf("asked over IPv6 from %v, want %s", from, host6)
	}
	if n := w.outside.asked.Load(); n != 2 {
		t.Errorf("probe server asked %d times, want 2: once per family", n)
	}
	v4, v6 := reports[0], reports[1]
	if v4.Verdict != Reachable || v4.Address != netip.AddrPortFrom(wanAddr, 25565) {
		t.Errorf("IPv4: %s at %s, want reachable at %s:25565", v4.Verdict, v4.Address, wanAddr)
	}
	if v6.Verdict != Reachable || v6.Address != mc6 || v6.Info == nil || v6.Info.Name != "A Minecraft Server" {
		t.Errorf("IPv6: %s at %s, info %+v; want reachable at %s with the MOTD", v6.Verdict, v6.Address, v6.Info, mc6)
	}
	if s := stepOf(v6, LayerWAN); s.Status != StatusOK || !strings.Contains(s.Message, "global IPv6 address 2a02:8000:77:1::10: no NAT") {
		t.Errorf("IPv6 address layer: %+v", s)
	}
}

// TestCheckOverIPv6CouldNotRun: a probe server reached over IPv4 only
// leaves the IPv6 verdict inconclusive, with a VantageErr that says it
// answered over IPv4 only (check exits 5 on it); the IPv4 verdict stands.
func TestCheckOverIPv6CouldNotRun(t *testing.T) {
	w := newWorld()
	w.serveMinecraft6()
	w.outside = &fakeVantage{observed: wanAddr, answer: Result{Answered: true}}
	reports := w.checker6().Check(context.Background(), []Target{mcTarget(), mcTarget6()})
	if reports[0].Verdict != Reachable || reports[0].VantageErr != nil {
		t.Errorf("IPv4: %s, %v; want reachable", reports[0].Verdict, reports[0].VantageErr)
	}
	r := reports[1]
	if r.Verdict != Inconclusive || r.VantageErr == nil || !strings.Contains(r.VantageErr.Error(), "answered over IPv4 only") ||
		!strings.Contains(stepOf(r, LayerOutside).Message, "not checked from outside over IPv6: ") {
		t.Errorf("IPv6: %s, %v, outside %+v", r.Verdict, r.VantageErr, stepOf(r, LayerOutside))
	}
}

// TestCheckIPv6WithoutAnAddress: an IPv6 target for self on a host
// without a stable global IPv6 address fails locally with why; nothing is
// asked over IPv6.
func TestCheckIPv6WithoutAnAddress(t *testing.T) {
	w := newWorld()
	w.serveMinecraft6()
	w.outside = reached6()
	c := w.checker()
	c.Self6 = forward.SelfIPv6{Why: "this host has no stable global IPv6 address (1 temporary one passed over)"}
	tgt := mcTarget6()
	tgt.Internal = netip.AddrPortFrom(netip.Addr{}, 25565)
	r := c.Check(context.Background(), []Target{tgt})[0]
	if r.Verdict != Unreachable || !strings.Contains(r.Cause, "1 temporary one passed over") || !strings.Contains(r.Fix, "SLAAC") {
		t.Errorf("verdict %s, cause %q, fix %q", r.Verdict, r.Cause, r.Fix)
	}
	if w.outside.from6.Load() != nil || r.VantageErr != nil {
		t.Errorf("asked over IPv6 from %v (err %v) with no address to ask from", w.outside.from6.Load(), r.VantageErr)
	}
}

// TestCheckIPv6Addresses: a unique local address is named as one the
// internet cannot reach; another host's address cannot be checked from
// here over IPv6 (the probe server probes only the requester), which is
// said, and is not a check that could not run.
func TestCheckIPv6Addresses(t *testing.T) {
	w := newWorld()
	ula := netip.MustParseAddrPort("[fd00::20]:8080")
	w.answers[ula] = Result{Answered: true}
	w.gw.Self6 = host6
	w.outside = reached6()
	tgt := Target{Rule: "web", Kind: TCP, External: forward.Key{Protocol: forward.TCP, ExternalPort: 8080, Family: forward.IPv6}, Internal: ula}
	r := w.checker6().Check(context.Background(), []Target{tgt})[0]
	if s := stepOf(r, LayerWAN); r.Verdict != Unreachable || s.Status != StatusFail || !strings.Contains(s.Message, "unique local address") {
		t.Errorf("ULA: %s, %+v", r.Verdict, s)
	}

	other := netip.MustParseAddrPort("[2a02:8000:77:1::20]:8080")
	w.answers[other] = Result{Answered: true}
	w.gw.Put(forward.Mapping{Key: tgt.External, InternalHost: other.Addr(), InternalPort: 8080, Description: "portfwd:web", Enabled: true})
	w.outside.err6 = errors.Join(ErrNotThisHost)
	tgt.Internal = other
	r = w.checker6().Check(context.Background(), []Target{tgt})[0]
	if s := stepOf(r, LayerOutside); r.Verdict != Inconclusive || r.VantageErr != nil || !strings.Contains(s.Message, "2a02:8000:77:1::20 is another host's") ||
		!strings.Contains(s.Fix, "portfwd probe [2a02:8000:77:1::20]:8080") {
		t.Errorf("another host: %s, %v, %+v", r.Verdict, r.VantageErr, s)
	}
}

// TestCheckCarrierGradeNATOffersIPv6: behind carrier-grade NAT, a host
// with a stable global IPv6 address is told to open the rule over IPv6,
// with the address friends then use; a dual rule is told its pinhole is
// the way in; without IPv6 the advice is the ways around.
func TestCheckCarrierGradeNATOffersIPv6(t *testing.T) {
	for _, tt := range []struct {
		name    string
		self6   netip.Addr
		targets []Target
		want    string
	}{
		{"IPv6 available", host6, []Target{mcTarget()},
			"this host has the global IPv6 address 2a02:8000:77:1::10: set family: dual (or ipv6) on rule minecraft and run portfwd apply; friends then connect to [2a02:8000:77:1::10]:25565 over IPv6"},
		{"dual rule", host6, []Target{mcTarget(), mcTarget6()},
			"this rule's IPv6 pinhole is the way in: friends connect to [2a02:8000:77:1::10]:25565 over IPv6"},
		{"no IPv6", netip.Addr{}, []Target{mcTarget()}, cgnatFix},
	} {
		w := newWorld()
		w.serveMinecraft6()
		w.gw.External = netip.MustParseAddr("100.64.3.4")
		c := w.checker()
		c.Self6.Addr = tt.self6
		r := c.Check(context.Background(), tt.targets)[0]
		if r.Verdict != Unreachable || !strings.Contains(r.Cause, "carrier-grade NAT") || !strings.Contains(r.Fix, tt.want) {
			t.Errorf("%s: %s, cause %q, fix %q; want the fix to say %q", tt.name, r.Verdict, r.Cause, r.Fix, tt.want)
		}
	}
}

func TestTargetsPerFamily(t *testing.T) {
	other6 := netip.MustParseAddr("2a02:8000:77:1::20")
	cfg := &forward.Config{Name: "pc", Rules: []forward.Rule{
		{Name: "mc", Protocols: []forward.Protocol{forward.TCP}, External: forward.PortRange{First: 25565, Last: 25565},
			Internal: forward.PortRange{First: 25565, Last: 25565}, Probe: "minecraft-java", Families: []forward.Family{forward.IPv4, forward.IPv6}},
		{Name: "web", Protocols: []forward.Protocol{forward.TCP}, External: forward.PortRange{First: 8080, Last: 8080},
			Internal: forward.PortRange{First: 80, Last: 80}, Probe: "http", Families: []forward.Family{forward.IPv6}, InternalAddr6: other6},
	}}
	got := Targets(cfg, forward.Hosts{Self: lanHost, Self6: host6})
	want := []Target{
		{Rule: "mc", Tag: "pf:pc:mc", Kind: MinecraftJava, External: mcKey, Internal: mcLAN, Self: true},
		{Rule: "mc", Tag: "pf:pc:mc", Kind: MinecraftJava, External: mcKey6, Internal: mc6, Self: true},
		// A pinhole has no NAT: its key is the internal port.
		{Rule: "web", Tag: "pf:pc:web", Kind: HTTP, External: forward.Key{Protocol: forward.TCP, ExternalPort: 80, Family: forward.IPv6},
			Internal: netip.AddrPortFrom(other6, 80)},
	}
	if len(got) != len(want) {
		t.Fatalf("Targets = %+v\nwant %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("target %d = %+v\nwant %+v", i, got[i], want[i])
		}
	}
	if got := Targets(cfg, forward.Hosts{Self: lanHost}); got[1].Internal.Addr().IsValid() || got[1].Internal.Port() != 25565 {
		t.Errorf("IPv6 for self without an address: %+v; want no address, the port kept", got[1])
	}
}

func TestIPv6ListenFix(t *testing.T) {
	for kind, want := range map[Kind]string{
		MinecraftJava:    "leave server-ip= empty",
		MinecraftBedrock: "server-portv6=19132",
		TCP:              "bind it to :: (every IPv4 and IPv6 address",
	} {
		if got := ipv6ListenFix(kind, 19132); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want it to say %q", kind, got, want)
		}
	}
}
