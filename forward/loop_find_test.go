package forward_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

// The Loop's check on a backend that can look one mapping up
// (forward.Finder), as a UPnP IGD does: one request per check, whatever
// the gateway holds.

// finding is a Memory with forward.Finder, counting the calls that would
// each be requests to a router: List (one per entry on an IGD:1), Find and
// ExternalAddr.
type finding struct {
	*forwardtest.Memory
	fromState bool // Properties.ListsFromState

	mu                      sync.Mutex
	lists, finds, externals int
	asked                   []forward.Key
	findErr, listErr        error // when set, Find or List fails with it
}

func (g *finding) Properties() forward.Properties {
	p := g.Memory.Properties()
	p.ListsFromState = g.fromState
	return p
}

func (g *finding) List(ctx context.Context) ([]forward.Mapping, error) {
	g.mu.Lock()
	g.lists++
	err := g.listErr
	g.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return g.Memory.List(ctx)
}

func (g *finding) ExternalAddr(ctx context.Context) (netip.Addr, error) {
	g.mu.Lock()
	g.externals++
	g.mu.Unlock()
	return g.Memory.ExternalAddr(ctx)
}

func (g *finding) Find(ctx context.Context, k forward.Key) (forward.Mapping, bool, error) {
	g.mu.Lock()
	g.finds++
	g.asked = append(g.asked, k)
	err := g.findErr
	g.mu.Unlock()
	if err != nil {
		return forward.Mapping{}, false, err
	}
	ms, err := g.Memory.List(ctx)
	for _, m := range ms {
		if m.Key == k {
			return m, true, err
		}
	}
	return forward.Mapping{}, false, err
}

// calls reports the calls since the last reset, and resets.
func (g *finding) calls() (lists, finds, externals int, asked []forward.Key) {
	g.mu.Lock()
	defer g.mu.Unlock()
	lists, finds, externals, asked = g.lists, g.finds, g.externals, g.asked
	g.lists, g.finds, g.externals, g.asked = 0, 0, 0, nil
	return
}

// startFinding runs a Loop over a finding backend on h.gw.
func startFinding(t *testing.T, cfg *forward.Config, tune func(*harness, *finding)) (*harness, *finding) {
	t.Helper()
	var f *finding
	h := start(t, cfg, func(h *harness) {
		f = &finding{Memory: h.gw}
		h.loop.Connect = func(context.Context) (*forward.Gateway, error) {
			return &forward.Gateway{Backend: f, Self: self}, nil
		}
		if tune != nil {
			tune(h, f)
		}
	})
	return h, f
}

// manyRules is a config of n TCP rules from port 20000, with a lease long
// enough that no renewal falls among the checks.
func manyRules(n int) string {
	var b strings.Builder
	b.WriteString("gateway: {lease: 1h}\nrules:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {name: r%d, protocol: tcp, external_port: %d}\n", i, 20000+i)
	}
	return b.String()
}

// checks fires the loop's next n waits, the checks when nothing else is
// due, and returns the wait it is blocked on after them.
func (h *harness) checks(t *testing.T, n int) wait {
	t.Helper()
	w := h.clk.next(t)
	for range n {
		h.clk.fire(w)
		w = h.clk.next(t)
	}
	return w
}

// noReport fails t if a pass was reported.
func (h *harness) noReport(t *testing.T, when string) {
	t.Helper()
	select {
	case rep := <-h.obs.reports:
		t.Fatalf("%s: a pass ran: %+v", when, rep)
	default:
	}
}

// TestLoopCheckCostsOneCall: through Finder each check is one call —
// never a List — with 2 rules or with 60 among 100 foreign mappings; the
// checks ask about every held mapping in turn, and every tenth asks the
// WAN address instead.
func TestLoopCheckCostsOneCall(t *testing.T) {
	for _, tt := range []struct{ rules, foreign int }{{2, 0}, {60, 100}} {
		t.Run(fmt.Sprintf("%d rules, %d foreign", tt.rules, tt.foreign), func(t *testing.T) {
			h, f := startFinding(t, loopConfig(t, manyRules(tt.rules)), func(h *harness, _ *finding) {
				for i := range tt.foreign {
					h.gw.Put(forward.Mapping{Key: forward.Key{Protocol: forward.UDP, ExternalPort: uint16(40000 + i)},
						InternalHost: netip.MustParseAddr("192.168.1.99"), InternalPort: 1, Description: "someone", Enabled: true})
				}
			})
			h.obs.report(t)
			f.calls()
			const n = 2*60 + 10
			h.checks(t, n)
			h.noReport(t, "checks with everything in place")
			lists, finds, externals, asked := f.calls()
			if lists != 0 || finds+externals != n || externals != n/10 {
				t.Errorf("%d checks made %d Lists, %d Finds, %d ExternalAddrs; want only one Find or, every tenth, one ExternalAddr each",
					n, lists, finds, externals)
			}
			seen := map[forward.Key]int{}
			for _, k := range asked {
				seen[k]++
			}
			if len(seen) != tt.rules {
				t.Errorf("the checks asked about %d keys, want each of the %d held", len(seen), tt.rules)
			}
		})
	}
}

// TestLoopFindsADeletedMappingInTurn: a mapping deleted on the gateway is
// found when its turn comes, within as many checks as mappings are held
// (one more when the WAN address's turn falls among them), and restored.
func TestLoopFindsADeletedMappingInTurn(t *testing.T) {
	const rules = 5
	h, _ := startFinding(t, loopConfig(t, manyRules(rules)), nil)
	h.obs.report(t)
	w := h.checks(t, 3)
	gone := forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: 20002}}
	h.gw.Delete(context.Background(), gone)
	for i := 1; ; i++ {
		h.clk.fire(w)
		w = h.clk.next(t)
		select {
		case rep := <-h.obs.reports:
			if rep.Reason != forward.JobMissing || rep.Made != 1 {
				t.Errorf("after the deletion: %+v; want tcp/20002 re-created for %q", rep, forward.JobMissing)
			}
			if got := keys(t, h.gw); !strings.Contains(got, "tcp/20002") {
				t.Errorf("gateway holds %q", got)
			}
			return
		default:
		}
		if i == rules+1 {
			t.Fatalf("%d checks did not find the deleted tcp/20002", i)
		}
	}
}

// TestLoopFindsAllGoneWithinTwoChecks: a rebooted router, every mapping
// gone, is found by the next check — or, when that check's turn is the
// WAN address, by the one after — and everything is restored.
func TestLoopFindsAllGoneWithinTwoChecks(t *testing.T) {
	for _, tt := range []struct {
		before, within int // checks before the reboot; checks until found
	}{{0, 1}, {8, 1}, {9, 2}} {
		t.Run(fmt.Sprintf("after %d checks", tt.before), func(t *testing.T) {
			h, _ := startFinding(t, loopConfig(t, manyRules(20)), nil)
			h.obs.report(t)
			w := h.checks(t, tt.before)
			ms, _ := h.gw.List(context.Background())
			for _, m := range ms {
				h.gw.Delete(context.Background(), m)
			}
			for range tt.within - 1 {
				h.clk.fire(w)
				w = h.clk.next(t)
				h.noReport(t, "the WAN address's turn")
			}
			h.clk.fire(w)
			if rep := h.obs.report(t); rep.Reason != forward.JobMissing || rep.Made != 20 {
				t.Errorf("after every mapping vanished: %+v; want all 20 restored for %q", rep, forward.JobMissing)
			}
		})
	}
}

// TestLoopFindFailureFallsBackToList: a Find that fails (a router that
// answers GetSpecificPortMappingEntry badly) makes the check list the
// gateway instead: a gateway that lists is not unreachable, and a mapping
// gone is still found; only when List fails too is the gateway reported
// unreachable.
func TestLoopFindFailureFallsBackToList(t *testing.T) {
	var mu sync.Mutex
	var said int
	h, f := startFinding(t, loopConfig(t, twoRules), func(h *harness, f *finding) {
		f.findErr = errors.New("501 action failed")
		h.loop.Logf = func(format string, a ...any) {
			mu.Lock()
			defer mu.Unlock()
			if strings.Contains(format, "listing the gateway instead") {
				said++
			}
			t.Logf(format, a...)
		}
	})
	h.obs.report(t)
	f.calls()
	w := h.checks(t, 2)
	if lists, finds, _, _ := f.calls(); lists != 2 || finds != 2 {
		t.Errorf("two checks whose Find failed made %d Lists, %d Finds; want two of each", lists, finds)
	}
	mu.Lock()
	if said != 1 {
		t.Errorf("the fallback was logged %d times in two checks, want once", said)
	}
	mu.Unlock()
	h.noReport(t, "a failed Find on a gateway that lists")
	select {
	case <-h.obs.unreachable:
		t.Fatal("a failed Find on a gateway that lists reported it unreachable")
	default:
	}
	h.gw.Delete(context.Background(), forward.Mapping{Key: forward.Key{Protocol: forward.UDP, ExternalPort: 27015}})
	h.clk.fire(w)
	if rep := h.obs.report(t); rep.Reason != forward.JobMissing || rep.Made != 1 {
		t.Errorf("a deletion seen by the fallback listing: %+v", rep)
	}
	f.mu.Lock()
	f.listErr = errors.New("connection refused")
	f.mu.Unlock()
	h.clk.fire(h.clk.next(t))
	<-h.obs.unreachable
}

// TestLoopRecordsBackendIgnoresFinder: a backend listing from its records
// is listed at every check even when it has Finder, since the listing is
// what reads its epoch; a restart is still told as one.
func TestLoopRecordsBackendIgnoresFinder(t *testing.T) {
	h, f := startFinding(t, loopConfig(t, twoRules), func(_ *harness, f *finding) { f.fromState = true })
	h.obs.report(t)
	f.calls()
	w := h.checks(t, 1)
	if lists, finds, _, _ := f.calls(); lists != 1 || finds != 0 {
		t.Errorf("a check made %d Lists, %d Finds; want the listing", lists, finds)
	}
	ms, _ := h.gw.List(context.Background())
	for _, m := range ms {
		h.gw.Delete(context.Background(), m)
	}
	h.clk.fire(w)
	if rep := h.obs.report(t); rep.Reason != forward.JobRestarted {
		t.Errorf("after every record vanished: %+v; want %q", rep, forward.JobRestarted)
	}
}

// TestLoopFinderNoticesANewExternalAddress: through Finder the WAN
// address is asked every tenth check; a change is reconciled at the turn
// after the one that learnt it.
func TestLoopFinderNoticesANewExternalAddress(t *testing.T) {
	h, _ := startFinding(t, loopConfig(t, manyRules(3)), nil)
	h.obs.report(t)
	w := h.checks(t, 10) // the tenth learns the address
	h.gw.External = netip.MustParseAddr("198.51.100.9")
	for range 9 {
		h.clk.fire(w)
		w = h.clk.next(t)
	}
	h.noReport(t, "checks of mappings")
	h.clk.fire(w)
	if rep := h.obs.report(t); rep.Reason != forward.JobExternal {
		t.Errorf("after the WAN address changed: %+v", rep)
	}
}
