package upnp

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// replayConfig is what every replayed router is asked to forward: a
// Minecraft server, a Valheim world's range, and a port that another host
// on the router's LAN already holds (replayHeld).
const replayConfig = `rules:
  - name: minecraft
    protocol: tcp
    external_port: 25565
  - name: valheim
    protocol: udp
    external_port: 2456-2458
  - name: held
    protocol: tcp
    external_port: 27015
`

// replayHeld is the mapping another LAN host made before portfwd ran.
var replayHeld = fakeEntry{proto: "TCP", ext: 27015, port: 27015, client: "192.168.1.77", desc: "steam", enabled: true}

// TestReplayRouters runs portfwd's discovery and UPnP backend against every
// router of the corpus in testdata/routers, as a user's apply, re-apply,
// plan and down would: discovered; apply makes every free rule and names
// the other host on the held port; a second apply sends no change; a plan
// then has nothing to do but the conflict; down leaves the router's own
// mappings and the other host's.
func TestReplayRouters(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join("testdata", "routers", "*", "desc.http"))
	if len(dirs) == 0 {
		t.Fatal("no routers in testdata/routers")
	}
	for _, d := range dirs {
		name := filepath.Base(filepath.Dir(d))
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := loadRouter(t, name)
			replayRun(t, startReplay(t, r))
			if r.beh.fix606 != "" {
				replayRefused(t, startReplay(t, r))
			}
		})
	}
}

// replayDiscover finds the replayed router as portfwd does.
func replayDiscover(t *testing.T, g *replayGateway) *IGD {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	igd, err := Discover(ctx, DiscoverOptions{Gateway: g.gatewayAddr(), unicastPort: g.ssdpPort(), noMulticast: true,
		Timeout: g.router.beh.ssdpDelay + DefaultDiscoverTimeout})
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return igd
}

func replayRun(t *testing.T, g *replayGateway) {
	g.igd.mu.Lock()
	g.igd.entries = append(g.igd.entries, replayHeld)
	g.igd.mu.Unlock()
	gw := forward.NewGateway(replayDiscover(t, g))
	ctx := context.Background()
	cfg, _, err := forward.Load(ctx, "replay.yaml", []byte(replayConfig), forward.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res := replayReconcile(t, gw, cfg, forward.ModeApply)
	replayCheckApply(t, res)
	writes := g.igd.count("AddPortMapping") + g.igd.count("DeletePortMapping")
	if res := replayReconcile(t, gw, cfg, forward.ModeApply); res.Result.Made() != 0 {
		t.Errorf("re-apply made %d changes: %+v", res.Result.Made(), res.Result.Outcomes)
	}
	if n := g.igd.count("AddPortMapping") + g.igd.count("DeletePortMapping"); n != writes {
		t.Errorf("re-apply sent %d writes to the router", n-writes)
	}
	plan := replayReconcile(t, gw, cfg, forward.ModePlan).Plan
	for _, c := range plan.Changes {
		if c.Action != forward.Noop && c.Action != forward.Conflict {
			t.Errorf("plan after apply: %s %s", c.Action, c.Key)
		}
	}
	replayReconcile(t, gw, cfg, forward.ModeDown)
	want := append(slices.Clone(g.router.beh.own), replayHeld)
	g.igd.mu.Lock()
	defer g.igd.mu.Unlock()
	if !slices.EqualFunc(g.igd.entries, want, func(a, b fakeEntry) bool { return a.proto == b.proto && a.ext == b.ext && a.client == b.client }) {
		t.Errorf("after down the router holds %+v; want only %+v", g.igd.entries, want)
	}
}

// replayReconcile runs one reconcile; a failure to list is fatal.
func replayReconcile(t *testing.T, gw *forward.Gateway, cfg *forward.Config, mode forward.Mode) *forward.Reconciliation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := forward.Reconcile(ctx, gw, cfg, forward.ReconcileOptions{Mode: mode})
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	return r
}

// replayCheckApply: every free rule made, the held port a conflict naming
// its holder.
func replayCheckApply(t *testing.T, r *forward.Reconciliation) {
	t.Helper()
	for _, o := range r.Result.Outcomes {
		var ce *forward.ConflictError
		switch {
		case int(o.Change.Key.ExternalPort) == replayHeld.ext:
			if !errors.As(o.Err, &ce) || ce.Holder.InternalHost.String() != replayHeld.client ||
				!strings.Contains(o.Err.Error(), replayHeld.client) {
				t.Errorf("held port: %v; want a conflict naming %s", o.Err, replayHeld.client)
			}
		case o.Err != nil:
			t.Errorf("%s: %v", o.Change.Key, o.Err)
		}
	}
	if n := r.Result.Made(); n != 4 {
		t.Errorf("apply made %d changes, want 4 (tcp/25565, udp/2456-2458): %+v", n, r.Result.Outcomes)
	}
}

// replayRefused: a router that refuses this host its mappings (606, as a
// FRITZ!Box does while "Permit independent port sharing" is off for the
// device) gets an error that names the router's family and its own fix.
func replayRefused(t *testing.T, g *replayGateway) {
	g.igd.mu.Lock()
	g.igd.addFault = faultFiles["606"]
	g.igd.mu.Unlock()
	igd := replayDiscover(t, g)
	if igd.family == "" {
		t.Fatalf("the router's family is not recognised, so its fix (%s) cannot be given", g.router.beh.fix606)
	}
	ctx := context.Background()
	cfg, _, err := forward.Load(ctx, "replay.yaml", []byte(replayConfig), forward.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res := replayReconcile(t, forward.NewGateway(igd), cfg, forward.ModeApply).Result
	fix := ownRefusedFix(igd.family)
	for _, o := range res.Outcomes {
		if int(o.Change.Key.ExternalPort) == replayHeld.ext {
			continue
		}
		if !errors.Is(o.Err, forward.ErrNotAuthorized) || !strings.Contains(o.Err.Error(), "the "+igd.family+" refused") ||
			!strings.Contains(o.Err.Error(), fix) {
			t.Errorf("%s: %v; want the %s's fix: %s", o.Change.Key, o.Err, igd.family, fix)
		}
	}
}

// TestReplayCapturedFaults: every fault captured from a real router
// (testdata/routers/*/<Action>-<code>.http) reaches portfwd as its UPnP
// error code, whatever the router's spelling of the envelope — the ARRIS
// one too, whose description is not public.
func TestReplayCapturedFaults(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "routers", "*", "*-[0-9]*.http"))
	if len(paths) == 0 {
		t.Fatal("no captured faults")
	}
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".http")
		action, code, _ := strings.Cut(name, "-")
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		addr := serveRawOnce(t, raw)
		u, _ := url.Parse("http://" + addr + "/ctl")
		c := serviceClient{sc: soapClient(u, "127.0.0.1"), urn: "urn:schemas-upnp-org:service:WANIPConnection:1"}
		err = asSOAPError(action, c.do(context.Background(), action, nil, nil))
		if got := soapCode(err); strconv.Itoa(got) != code {
			t.Errorf("%s: got %v (code %d), want code %s", p, err, got, code)
		}
	}
}

// serveRawOnce answers one HTTP request on loopback with raw.
func serveRawOnce(t *testing.T, raw []byte) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			c.Write(raw)
		}
	}()
	return l.Addr().String()
}

// TestReplayReportedQuirks replays miniupnpd's captured bytes with the
// behaviours users reported of routers whose bytes are not public: a
// Linksys WRT120N answering HTTP/1.1 without "Connection: close" and then
// closing (the next request on that connection gets EOF), a late SSDP
// answer (D-Link DSL-2730E, scaled down), 714 or 402 at the end of the
// table, 402 to any finite lease (ARRIS), and SSDP answers from another
// port.
func TestReplayReportedQuirks(t *testing.T) {
	quirks := map[string]func(*behaviour){
		"close-without-header": func(b *behaviour) { b.connection = "close-without-header" },
		"keep-open":            func(b *behaviour) { b.connection = "keep-open" },
		"late-ssdp":            func(b *behaviour) { b.ssdpDelay = 1500 * time.Millisecond },
		"end-714":              func(b *behaviour) { b.endOfTable = "714" },
		"end-402":              func(b *behaviour) { b.endOfTable = "402" },
		"finite-402":           func(b *behaviour) { b.finite = "402" },
		"finite-725":           func(b *behaviour) { b.finite = "725" },
		"ssdp-ephemeral-port":  func(b *behaviour) { b.ephemeral = true },
	}
	for name, set := range quirks {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := loadRouter(t, "miniupnpd-igd1")
			set(&r.beh)
			replayRun(t, startReplay(t, r))
		})
	}
}
