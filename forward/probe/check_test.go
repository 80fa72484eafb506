package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

var (
	lanHost = netip.MustParseAddr("192.168.1.10")
	wanAddr = netip.MustParseAddr("198.51.99.7") // public (not a documentation range)
	mcKey   = forward.Key{Protocol: forward.TCP, ExternalPort: 25565}
	mcLAN   = netip.AddrPortFrom(lanHost, 25565)
)

// world is a fake home network for the checker: what answers where.
type world struct {
	answers  map[netip.AddrPort]Result // by address probed
	bindings []Binding
	bindErr  error // Bindings cannot look (not Linux, /proc unreadable)
	gw       *forwardtest.Memory
	outside  *fakeVantage
}

func newWorld() *world {
	gw := forwardtest.NewMemory(lanHost)
	gw.External = wanAddr
	return &world{answers: map[netip.AddrPort]Result{}, gw: gw}
}

func (w *world) probe(_ context.Context, kind Kind, addr netip.AddrPort, _ Options) Result {
	if r, ok := w.answers[addr]; ok {
		r.Kind, r.Addr = kind, addr
		return r
	}
	return Result{Kind: kind, Addr: addr, Err: ErrRefused}
}

func (w *world) checker() *Checker {
	c := &Checker{Gateway: w.gw, Self: lanHost, Probe: w.probe,
		Bindings: func(forward.Protocol, uint16) ([]Binding, error) { return w.bindings, w.bindErr }}
	if w.outside != nil {
		c.Vantage = w.outside
	}
	return c
}

type fakeVantage struct {
	observed netip.Addr
	answer   Result
	asked    atomic.Int32 // Check asks from several goroutines
	// over6, when set, answers the requests over IPv6: from the address
	// they come from, with answer6, or with err6.
	over6   bool
	answer6 Result
	err6    error
	from6   atomic.Pointer[netip.Addr] // the last IPv6 origin asked from
}

func (v *fakeVantage) Probe(_ context.Context, from netip.Addr, reqs []Request) (netip.Addr, []Result, error) {
	v.asked.Add(1)
	observed, answer := v.observed, v.answer
	if forward.FamilyOf(from) == forward.IPv6 {
		v.from6.Store(&from)
		if !v.over6 {
			return netip.Addr{}, nil, fmt.Errorf("the fake probe server cannot be reached over IPv6")
		}
		if v.err6 != nil {
			return netip.Addr{}, nil, v.err6
		}
		observed, answer = from, v.answer6
	}
	out := make([]Result, len(reqs))
	for i, r := range reqs {
		out[i] = answer
		out[i].Kind, out[i].Addr = r.Kind, netip.AddrPortFrom(observed, r.Port)
	}
	return observed, out, nil
}

func mcTarget() Target {
	return Target{Rule: "minecraft", Kind: MinecraftJava, External: mcKey, Internal: mcLAN, Self: true}
}

func (w *world) serveMinecraft() {
	w.bindings = []Binding{{Protocol: forward.TCP, Local: netip.MustParseAddrPort("0.0.0.0:25565"), PID: 42, Name: "java"}}
	w.answers[mcLAN] = Result{Answered: true, Info: Info{Name: "A Minecraft Server", Players: 1, MaxPlayers: 20}, Latency: time.Millisecond}
	w.gw.Put(forward.Mapping{Key: mcKey, InternalHost: lanHost, InternalPort: 25565, Description: "portfwd:minecraft", Enabled: true})
}

func TestCheckVerdicts(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(w *world)
		verdict   Verdict
		causeHas  string
		failLayer Layer
	}{
		{"reachable from outside", func(w *world) {
			w.serveMinecraft()
			w.outside = &fakeVantage{observed: wanAddr, answer: Result{Answered: true, Info: Info{Name: "A Minecraft Server"}}}
		}, Reachable, "", ""},
		{"nothing listening", func(w *world) {
			w.serveMinecraft()
			w.bindings, w.answers = nil, map[netip.AddrPort]Result{}
		}, Unreachable, "nothing listening on 192.168.1.10:25565", LayerLocal},
		{"bound to loopback only", func(w *world) {
			w.serveMinecraft()
			w.bindings[0].Local = netip.MustParseAddrPort("127.0.0.1:25565")
		}, Unreachable, "127.0.0.1", LayerLocal},
		{"mapping missing", func(w *world) {
			w.serveMinecraft()
			w.gw.Delete(context.Background(), forward.Mapping{Key: mcKey})
		}, Unreachable, "mapping missing on the gateway", LayerGateway},
		{"carrier-grade NAT named before the missing mapping", func(w *world) {
			w.serveMinecraft()
			w.gw.External = netip.MustParseAddr("100.64.3.4")
			w.gw.Delete(context.Background(), forward.Mapping{Key: mcKey})
		}, Unreachable, "carrier-grade NAT", LayerWAN},
		{"double NAT seen by the vantage", func(w *world) {
			w.serveMinecraft()
			w.outside = &fakeVantage{observed: netip.MustParseAddr("198.51.99.99"), answer: Result{Err: ErrNoAnswer}}
		}, Unreachable, "another NAT in front", LayerWAN},
		{"blocked outside", func(w *world) {
			w.serveMinecraft()
			w.outside = &fakeVantage{observed: wanAddr, answer: Result{Err: ErrNoAnswer}}
		}, Unreachable, "not reachable from outside", LayerOutside},
		{"no vantage: hairpin is only a weak signal", func(w *world) {
			w.serveMinecraft()
			w.answers[netip.AddrPortFrom(wanAddr, 25565)] = Result{Answered: true}
		}, Inconclusive, "hairpin", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			tt.setup(w)
			r := w.checker().Check(context.Background(), []Target{mcTarget()})[0]
			if r.Verdict != tt.verdict || !strings.Contains(r.Cause, tt.causeHas) {
				t.Errorf("verdict %s, cause %q; want %s with %q\nsteps: %+v", r.Verdict, r.Cause, tt.verdict, tt.causeHas, r.Steps)
			}
			if tt.failLayer != "" && r.Fix == "" {
				t.Errorf("an unreachable verdict must say what to do: %+v", r)
			}
		})
	}
}

func TestCheckPlainUDPIsNeverReachableWithoutAnAnswer(t *testing.T) {
	w := newWorld()
	key := forward.Key{Protocol: forward.UDP, ExternalPort: 34197}
	w.bindings = []Binding{{Protocol: forward.UDP, Local: netip.MustParseAddrPort("0.0.0.0:34197")}}
	w.answers[netip.AddrPortFrom(lanHost, 34197)] = Result{Err: ErrNoAnswer}
	w.gw.Put(forward.Mapping{Key: key, InternalHost: lanHost, InternalPort: 34197, Description: "portfwd:factorio", Enabled: true})
	w.outside = &fakeVantage{observed: wanAddr, answer: Result{Err: ErrNoAnswer}}
	tgt := Target{Rule: "factorio", Kind: UDP, External: key, Internal: netip.AddrPortFrom(lanHost, 34197), Self: true}
	r := w.checker().Check(context.Background(), []Target{tgt})[0]
	if r.Verdict == Reachable {
		t.Errorf("plain UDP with no answer reported reachable: %+v", r)
	}
}

func TestCheckAsksVantageOnceForManyRules(t *testing.T) {
	w := newWorld()
	w.serveMinecraft()
	w.outside = &fakeVantage{observed: wanAddr, answer: Result{Answered: true}}
	var targets []Target
	for i := 0; i < 20; i++ {
		t := mcTarget()
		t.Rule = "r" + string(rune('a'+i))
		targets = append(targets, t)
	}
	reports := w.checker().Check(context.Background(), targets)
	if len(reports) != 20 || w.outside.asked.Load() != 2 {
		t.Errorf("%d reports, vantage asked %d times; want 20 and 2 (16 per request)", len(reports), w.outside.asked.Load())
	}
	for i, r := range reports {
		if r.Rule != targets[i].Rule {
			t.Fatalf("report %d is for %s, want %s: order lost", i, r.Rule, targets[i].Rule)
		}
	}
}

func TestTargets(t *testing.T) {
	cfg := &forward.Config{Name: "pc", Rules: []forward.Rule{
		{Name: "mc", Protocols: []forward.Protocol{forward.TCP}, External: forward.PortRange{First: 25565, Last: 25565},
			Internal: forward.PortRange{First: 25565, Last: 25565}, Probe: "minecraft-java"},
		{Name: "valheim", Protocols: []forward.Protocol{forward.UDP}, External: forward.PortRange{First: 2456, Last: 2457},
			Internal: forward.PortRange{First: 3456, Last: 3457}, Probe: "a2s", InternalAddr: netip.MustParseAddr("192.168.1.20")},
	}}
	got := Targets(cfg, forward.Hosts{Self: lanHost})
	want := []Target{
		{Rule: "mc", Tag: "pf:pc:mc", Kind: MinecraftJava, External: mcKey, Internal: mcLAN, Self: true},
		{Rule: "valheim", Tag: "pf:pc:valheim", Kind: A2S, External: forward.Key{Protocol: forward.UDP, ExternalPort: 2457},
			Internal: netip.MustParseAddrPort("192.168.1.20:3457")},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Targets = %+v\nwant %+v", got, want)
	}
}

// TestCheckSaysEachThingOnce: a failing layer's message says what is
// wrong and its fix what to do, never both the same advice; and when the
// server does not answer on the LAN, the outside layer failing too points
// back there, not at the router's firewall.
func TestCheckSaysEachThingOnce(t *testing.T) {
	w := newWorld()
	w.serveMinecraft()
	w.bindings, w.answers = nil, map[netip.AddrPort]Result{}
	w.outside = &fakeVantage{observed: wanAddr, answer: Result{Err: ErrRefused}}
	r := w.checker().Check(context.Background(), []Target{mcTarget()})[0]
	for _, s := range r.Steps {
		if s.Fix != "" && strings.Contains(s.Message, "start the server") {
			t.Errorf("%s: message %q repeats its fix %q", s.Layer, s.Message, s.Fix)
		}
		if s.Layer == LayerLocal && (s.Fix != "start the server, and check the rule's internal_port" || strings.Contains(s.Fix, "0.0.0.0")) {
			t.Errorf("nothing bound: fix %q; want start the server (nothing to re-bind yet)", s.Fix)
		}
		if s.Layer == LayerOutside && (s.Status != StatusFail || strings.Contains(s.Fix, "firewall") || !strings.Contains(s.Fix, "local layer")) {
			t.Errorf("outside while local fails: %+v; want a fix pointing at the local layer", s)
		}
	}
	if r.Verdict != Unreachable || !strings.HasPrefix(r.Cause, "nothing listening on 192.168.1.10:25565") {
		t.Errorf("verdict %s, cause %q", r.Verdict, r.Cause)
	}
}

// TestCheckNamesNoRoute: a host on none of this machine's networks is
// out of reach, said as such (not as "no answer before the deadline"), with
// the rule's internal_host as the thing to check; a host that did not
// answer ARP on its own network is told apart.
func TestCheckNamesNoRoute(t *testing.T) {
	for errno, want := range map[syscall.Errno]string{
		syscall.ENETUNREACH:  "it is on none of this machine's networks (network is unreachable)",
		syscall.EHOSTUNREACH: "no host answered for it on its network (no route to host)",
	} {
		dialErr := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}
		err := dialError(dialErr)
		if !errors.Is(err, ErrNoRoute) || !errors.Is(err, ErrNoAnswer) || !errors.Is(err, errno) || strings.Contains(err.Error(), "deadline") {
			t.Errorf("%v: dialError = %v; want ErrNoRoute, refining ErrNoAnswer, and no deadline", errno, err)
		}
		w := newWorld()
		other := netip.MustParseAddrPort("192.168.1.20:25565")
		w.gw.Put(forward.Mapping{Key: mcKey, InternalHost: other.Addr(), InternalPort: other.Port(), Description: "portfwd:minecraft", Enabled: true})
		w.answers[other] = Result{Err: fmt.Errorf("probing: %w", err)}
		tgt := Target{Rule: "minecraft", Kind: MinecraftJava, External: mcKey, Internal: other}
		r := w.checker().Check(context.Background(), []Target{tgt})[0]
		if r.Verdict != Unreachable || r.Cause != "192.168.1.20:25565 is out of reach: no route to the address: "+want ||
			!strings.Contains(r.Fix, "internal_host") {
			t.Errorf("%v: verdict %s, cause %q, fix %q", errno, r.Verdict, r.Cause, r.Fix)
		}
	}
}

// hostCheckingGateway is a gateway that knows it reaches no host on
// 192.168.1.0/24 (forward.HostChecker).
type hostCheckingGateway struct{ *forwardtest.Memory }

func (hostCheckingGateway) HostProblem(host netip.Addr) string {
	if netip.MustParsePrefix("192.168.1.0/24").Contains(host) {
		return host.String() + " is on none of the gateway's networks"
	}
	return ""
}

// TestCheckNamesTheHostTheGatewayCannotReach: when the gateway says it
// cannot reach the rule's host, the local layer's failure names that
// cause and the rule's internal_host, whatever the probe ran into.
func TestCheckNamesTheHostTheGatewayCannotReach(t *testing.T) {
	w := newWorld()
	other := netip.MustParseAddrPort("192.168.1.30:22")
	w.answers[other] = Result{Err: fmt.Errorf("connecting: %w", ErrNoAnswer)}
	c := w.checker()
	c.Gateway = hostCheckingGateway{w.gw}
	tgt := Target{Rule: "nas", Kind: TCP, External: forward.Key{Protocol: forward.TCP, ExternalPort: 2222}, Internal: other}
	r := c.Check(context.Background(), []Target{tgt})[0]
	if r.Verdict != Unreachable || r.Cause != "192.168.1.30:22 does not answer: 192.168.1.30 is on none of the gateway's networks" || r.Fix != FixInternalHost {
		t.Errorf("verdict %s, cause %q, fix %q", r.Verdict, r.Cause, r.Fix)
	}
}
