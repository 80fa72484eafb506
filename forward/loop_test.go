package forward_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

// fakeClock is the loop's clock in tests: the loop always waits on exactly
// one After, which the test sees on waits and fires when it chooses.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits chan wait
}

type wait struct {
	d  time.Duration
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), waits: make(chan wait)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.waits <- wait{d, ch}
	return ch
}

// next is the wait the loop is blocked on.
func (c *fakeClock) next(t *testing.T) wait {
	t.Helper()
	select {
	case w := <-c.waits:
		return w
	case <-time.After(5 * time.Second):
		t.Fatal("the loop did not wait")
	}
	return wait{}
}

// fire moves the clock to the end of w and wakes the loop.
func (c *fakeClock) fire(w wait) {
	c.mu.Lock()
	c.now = c.now.Add(w.d)
	now := c.now
	c.mu.Unlock()
	w.ch <- now
}

// recorder is an Observer that hands each event to the test.
type recorder struct {
	reports     chan forward.ReconcileReport
	unreachable chan time.Duration
}

func newRecorder() *recorder {
	return &recorder{reports: make(chan forward.ReconcileReport, 16), unreachable: make(chan time.Duration, 16)}
}

func (r *recorder) Reconciled(rep forward.ReconcileReport)          { r.reports <- rep }
func (r *recorder) GatewayUnreachable(_ error, retry time.Duration) { r.unreachable <- retry }

func (r *recorder) report(t *testing.T) forward.ReconcileReport {
	t.Helper()
	select {
	case rep := <-r.reports:
		return rep
	case <-time.After(5 * time.Second):
		t.Fatal("no reconcile reported")
	}
	return forward.ReconcileReport{}
}

func loopConfig(t *testing.T, src string) *forward.Config {
	t.Helper()
	cfg, _, err := forward.Load(context.Background(), "portfwd.yaml", []byte(src), forward.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const twoRules = `gateway: {lease: 30s}
rules:
  - {name: web, protocol: tcp, external_port: 8080}
  - {name: game, protocol: udp, external_port: 27015}
`

// harness runs a Loop on a Memory gateway with a fake clock.
type harness struct {
	gw   *forwardtest.Memory
	clk  *fakeClock
	obs  *recorder
	loop *forward.Loop
	done chan error
	stop context.CancelFunc
	// connectErr, when set, fails Connect.
	mu         sync.Mutex
	connectErr error
	connects   int
}

func start(t *testing.T, cfg *forward.Config, tune func(*harness)) *harness {
	t.Helper()
	h := &harness{gw: forwardtest.NewMemory(self), clk: newFakeClock(), obs: newRecorder(), done: make(chan error, 1)}
	h.loop = &forward.Loop{
		Config: cfg, Prune: true, Interval: 5 * time.Minute, Check: 2 * time.Second,
		Observer: h.obs, Now: h.clk.Now, After: h.clk.After,
		Connect: func(context.Context) (*forward.Gateway, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.connects++
			if h.connectErr != nil {
				return nil, h.connectErr
			}
			return &forward.Gateway{Backend: h.gw, Self: self}, nil
		},
		Logf: func(format string, a ...any) { t.Logf(format, a...) },
	}
	if tune != nil {
		tune(h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	go func() { h.done <- h.loop.Run(ctx); close(h.done) }()
	t.Cleanup(func() { h.end(t) })
	return h
}

func (h *harness) failConnect(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.connectErr = err
}

// end stops the loop and returns Run's result.
func (h *harness) end(t *testing.T) error {
	t.Helper()
	h.stop()
	for {
		select {
		case err := <-h.done:
			return err
		case <-h.clk.waits: // the loop may be blocked handing the clock a wait
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
}

func keys(t *testing.T, gw *forwardtest.Memory) string {
	t.Helper()
	ms, _ := gw.List(context.Background())
	var out []string
	for _, m := range ms {
		out = append(out, m.Key.String())
	}
	return strings.Join(out, " ")
}

func TestLoopReconcilesAtStart(t *testing.T) {
	h := start(t, loopConfig(t, twoRules), nil)
	rep := h.obs.report(t)
	if rep.Reason != forward.JobStart || rep.Made != 2 || rep.Failed != 0 || rep.Err != nil || rep.Backend != "memory" {
		t.Fatalf("first report = %+v", rep)
	}
	if got := keys(t, h.gw); got != "tcp/8080 udp/27015" {
		t.Errorf("gateway holds %q", got)
	}
	if len(rep.Rules) != 2 || rep.Rules[0].Rule != "web" || rep.Rules[0].State != forward.RuleOK ||
		!rep.Rules[0].Expires.Equal(rep.Start.Add(30*time.Second)) {
		t.Errorf("rules = %+v", rep.Rules)
	}
	if w := h.clk.next(t); w.d != 2*time.Second {
		t.Errorf("after start the loop waits %v, want the 2s check", w.d)
	}
	if err := h.end(t); err != nil {
		t.Errorf("Run = %v, want nil on cancel", err)
	}
}

func TestLoopRenewsAtHalfLease(t *testing.T) {
	h := start(t, loopConfig(t, twoRules), func(h *harness) { h.loop.Check = time.Hour })
	h.obs.report(t)
	adds, _ := h.gw.Calls()
	w := h.clk.next(t)
	if w.d != 15*time.Second {
		t.Fatalf("next wake in %v, want 15s (half the 30s lease)", w.d)
	}
	h.clk.fire(w)
	rep := h.obs.report(t)
	if again, _ := h.gw.Calls(); rep.Reason != forward.JobRenew || rep.Made != 2 || again != adds+2 {
		t.Errorf("renew pass: %+v, %d adds; want both mappings renewed", rep, again-adds)
	}
	if w := h.clk.next(t); w.d != 15*time.Second {
		t.Errorf("after the renewal the next one is in %v, want 15s", w.d)
	}
}

func TestLoopRestoresDeletedMappingAtNextCheck(t *testing.T) {
	h := start(t, loopConfig(t, twoRules), nil)
	h.obs.report(t)
	// A check that finds everything in place reconciles nothing.
	w := h.clk.next(t)
	h.clk.fire(w)
	w = h.clk.next(t)
	select {
	case rep := <-h.obs.reports:
		t.Fatalf("a clean check reconciled: %+v", rep)
	default:
	}
	// The router forgets one (a reboot, someone's web page).
	ms, _ := h.gw.List(context.Background())
	h.gw.Delete(context.Background(), ms[0])
	h.clk.fire(w)
	rep := h.obs.report(t)
	if rep.Reason != forward.JobMissing || rep.Made != 1 {
		t.Errorf("after a deletion: %+v; want the mapping re-created for %q", rep, forward.JobMissing)
	}
	if got := keys(t, h.gw); got != "tcp/8080 udp/27015" {
		t.Errorf("gateway holds %q", got)
	}
}

func TestLoopBacksOffWhileTheGatewayFails(t *testing.T) {
	h := start(t, loopConfig(t, twoRules), nil)
	h.obs.report(t)
	h.failConnect(errors.New("connection refused"))
	h.clk.fire(h.clk.next(t)) // the check fails
	want := time.Second
	for i := range 8 {
		retry := <-h.obs.unreachable
		if lo, hi := time.Duration(float64(want)*0.8), time.Duration(float64(want)*1.2); retry < lo || retry > hi {
			t.Errorf("failure %d: retry in %v, want %v ±20%%", i+1, retry, want)
		}
		w := h.clk.next(t)
		if w.d != retry {
			t.Errorf("failure %d: reported retry in %v, but waits %v", i+1, retry, w.d)
		}
		h.clk.fire(w)
		want = min(2*want, 8*time.Second) // a rebooting router is used again within seconds
	}
	<-h.obs.unreachable
	h.mu.Lock()
	connects := h.connects
	h.mu.Unlock()
	if connects != 10 {
		t.Errorf("Connect called %d times, want 10 (start and one per try)", connects)
	}
	// The gateway comes back: the next try finds everything in place, and
	// the renewals overdue by now follow a second later.
	h.failConnect(nil)
	h.clk.fire(h.clk.next(t))
	w := h.clk.next(t)
	if w.d != time.Second {
		t.Errorf("after recovery the loop waits %v, want 1s for the overdue renewals", w.d)
	}
	h.clk.fire(w)
	if rep := h.obs.report(t); rep.Reason != forward.JobRenew || rep.Made != 2 {
		t.Errorf("after recovery: %+v; want both renewed", rep)
	}
}

func TestLoopRetriesAFailedStart(t *testing.T) {
	h := start(t, loopConfig(t, twoRules), func(h *harness) { h.connectErr = errors.New("no gateway") })
	if rep := h.obs.report(t); rep.Reason != forward.JobStart || rep.Err == nil {
		t.Fatalf("failed start reported as %+v", rep)
	}
	<-h.obs.unreachable
	h.failConnect(nil)
	h.clk.fire(h.clk.next(t))
	if rep := h.obs.report(t); rep.Reason != forward.JobStart || rep.Err != nil || rep.Made != 2 {
		t.Errorf("the retry: %+v; want the start pass again, both created", rep)
	}
}

func TestLoopReload(t *testing.T) {
	h := start(t, loopConfig(t, twoRules), nil)
	h.obs.report(t)
	w := h.clk.next(t)
	h.loop.Reload(loopConfig(t, `gateway: {lease: 30s}
rules:
  - {name: web, protocol: tcp, external_port: 8080}
  - {name: ssh, protocol: tcp, external_port: 2222, internal_port: 22}
`))
	rep := h.obs.report(t)
	h.clk.fire(w) // the wait the reload interrupted, fired late: harmless
	if rep.Reason != forward.JobReload || rep.Made != 2 {
		t.Errorf("reload pass: %+v; want ssh created and game deleted", rep)
	}
	if got := keys(t, h.gw); got != "tcp/2222 tcp/8080" {
		t.Errorf("gateway holds %q, want tcp/2222 tcp/8080", got)
	}
	if rep.Rules[0].Rule != "web" || rep.Rules[1].Rule != "ssh" {
		t.Errorf("rules reported: %+v", rep.Rules)
	}
}

// TestLoopUpdateFromASource: a rule source's update (Docker containers)
// is reconciled at once and reported with the reason the source gave.
func TestLoopUpdateFromASource(t *testing.T) {
	h := start(t, loopConfig(t, twoRules), nil)
	h.obs.report(t)
	w := h.clk.next(t)
	h.loop.Update(loopConfig(t, "rules:\n  - {name: web, protocol: tcp, external_port: 8080}\n"), forward.JobSource)
	rep := h.obs.report(t)
	h.clk.fire(w)
	if rep.Reason != forward.JobSource || rep.Reason.String() != "containers changed" {
		t.Errorf("pass reason %v, want %v", rep.Reason, forward.JobSource)
	}
	if got := keys(t, h.gw); got != "tcp/8080" {
		t.Errorf("gateway holds %q, want the update's tcp/8080 alone", got)
	}
}

func TestLoopCleanupOnExitRemovesOwnedOnly(t *testing.T) {
	h := start(t, loopConfig(t, twoRules), func(h *harness) { h.loop.CleanupOnExit = true })
	foreign := forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: 3074}, InternalHost: self,
		InternalPort: 3074, Description: "console", Enabled: true}
	otherPC := forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: 9000},
		InternalHost: netip.MustParseAddr("192.168.1.99"), InternalPort: 9000, Description: forward.Tag("portfwd", "web"), Enabled: true}
	h.gw.Put(foreign)
	h.gw.Put(otherPC)
	h.obs.report(t)
	if err := h.end(t); err != nil {
		t.Fatalf("Run = %v", err)
	}
	rep := h.obs.report(t)
	if rep.Reason != forward.JobExit || rep.Made != 2 {
		t.Errorf("exit pass: %+v", rep)
	}
	if got := keys(t, h.gw); got != "tcp/3074 tcp/9000" {
		t.Errorf("after exit the gateway holds %q; want only the foreign tcp/3074 and another PC's tcp/9000", got)
	}
}

// fromState is a Memory that says it lists from a state file, as NAT-PMP
// and PCP do: there only an epoch reset drops every record at once.
type fromState struct{ *forwardtest.Memory }

func (g fromState) Properties() forward.Properties {
	p := g.Memory.Properties()
	p.ListsFromState = true
	return p
}

func TestLoopTellsARestartedGateway(t *testing.T) {
	h := start(t, loopConfig(t, twoRules), func(h *harness) {
		h.loop.Connect = func(context.Context) (*forward.Gateway, error) {
			return &forward.Gateway{Backend: fromState{h.gw}, Self: self}, nil
		}
	})
	h.obs.report(t)
	ms, _ := h.gw.List(context.Background())
	for _, m := range ms {
		h.gw.Delete(context.Background(), m)
	}
	h.clk.fire(h.clk.next(t))
	if rep := h.obs.report(t); rep.Reason != forward.JobRestarted || rep.Made != 2 {
		t.Errorf("after every record vanished: %+v; want %q", rep, forward.JobRestarted)
	}
}

func TestLoopReconcilesOnANewExternalAddress(t *testing.T) {
	h := start(t, loopConfig(t, twoRules), nil)
	h.obs.report(t)
	h.clk.fire(h.clk.next(t)) // the first check learns the address
	w := h.clk.next(t)
	h.gw.External = netip.MustParseAddr("198.51.100.9")
	h.clk.fire(w)
	if rep := h.obs.report(t); rep.Reason != forward.JobExternal {
		t.Errorf("after the WAN address changed: %+v", rep)
	}
}

// flaky fails its first Add with a timeout, as a gateway busy restarting.
type flaky struct {
	*forwardtest.Memory
	mu    sync.Mutex
	fails int
}

func (g *flaky) Add(ctx context.Context, m forward.Mapping) (forward.Mapping, error) {
	g.mu.Lock()
	fail := g.fails > 0
	g.fails--
	g.mu.Unlock()
	if fail {
		return forward.Mapping{}, context.DeadlineExceeded
	}
	return g.Memory.Add(ctx, m)
}

func TestLoopRetriesAFailedChange(t *testing.T) {
	h := start(t, loopConfig(t, twoRules), func(h *harness) {
		gw := &flaky{Memory: h.gw, fails: 1}
		h.loop.Connect = func(context.Context) (*forward.Gateway, error) {
			return &forward.Gateway{Backend: gw, Self: self}, nil
		}
	})
	if rep := h.obs.report(t); rep.Failed != 1 || rep.Made != 1 {
		t.Fatalf("first pass: %+v; want one failed", rep)
	}
	w := h.clk.next(t)
	if w.d < 800*time.Millisecond || w.d > 1200*time.Millisecond {
		t.Errorf("retry in %v, want 1s ±20%%", w.d)
	}
	h.clk.fire(w)
	if rep := h.obs.report(t); rep.Reason != forward.JobStart || rep.Made != 1 || rep.Failed != 0 {
		t.Errorf("the retry: %+v", rep)
	}
	select {
	case <-h.obs.unreachable:
		t.Error("a failed change reported the gateway unreachable")
	default:
	}
}
