package forward_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

// dualConfig loads one dual Minecraft rule for self.
func dualConfig(t *testing.T) *forward.Config {
	t.Helper()
	src := "rules:\n  - name: mc\n    service: minecraft-java\n    family: dual\n"
	cfg, _, err := forward.Load(context.Background(), "mc.yaml", []byte(src), forward.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var (
	hostSelf  = netip.MustParseAddr("192.168.1.10")
	hostSelf6 = netip.MustParseAddr("2a02:8000:77:1::10")
)

// TestDualRuleOpensForwardAndPinhole: a dual rule is two mappings, tcp/25565
// to the IPv4 address and tcp6/25565 to the IPv6 one; a second apply
// changes nothing, and down removes both.
func TestDualRuleOpensForwardAndPinhole(t *testing.T) {
	ctx := context.Background()
	mem := forwardtest.NewMemory(hostSelf)
	mem.Self6 = hostSelf6
	g := &forward.Gateway{Backend: mem, Self: hostSelf, Self6: forward.SelfIPv6{Addr: hostSelf6}}
	cfg := dualConfig(t)
	r, err := forward.Reconcile(ctx, g, cfg, forward.ReconcileOptions{Mode: forward.ModeApply})
	if err != nil || r.Result.Failed() != 0 {
		t.Fatalf("apply: %v %+v", err, r.Result)
	}
	got, _ := mem.List(ctx)
	want := []string{"tcp/25565 -> 192.168.1.10:25565", "tcp6/25565 -> [2a02:8000:77:1::10]:25565"}
	if len(got) != 2 || got[0].String() != want[0] || got[1].String() != want[1] {
		t.Fatalf("gateway holds %v, want %v", got, want)
	}
	again, _ := forward.Reconcile(ctx, g, cfg, forward.ReconcileOptions{Mode: forward.ModePlan})
	if again.Plan.Pending() {
		t.Errorf("second plan is not empty: %+v", again.Plan)
	}
	if _, err := forward.Reconcile(ctx, g, cfg, forward.ReconcileOptions{Mode: forward.ModeDown}); err != nil {
		t.Fatal(err)
	}
	if left, _ := mem.List(ctx); len(left) != 0 {
		t.Errorf("down left %v", left)
	}
}

// TestPinholeRefusedWithoutIPv6: on a backend without IPv6 the forward is
// made and the pinhole fails, saying so and what to do; on a host without
// an IPv6 address the plan already says why.
func TestPinholeRefusedWithoutIPv6(t *testing.T) {
	ctx := context.Background()
	cfg := dualConfig(t)
	for _, tc := range []struct {
		name               string
		backend6, gateway6 netip.Addr // the backend's IPv6 (none: it cannot open pinholes), this host's
		want               string
	}{
		{"backend without IPv6", netip.Addr{}, hostSelf6, "the memory backend cannot open IPv6 pinholes: use family: ipv4"},
		{"host without IPv6", hostSelf6, netip.Addr{}, "no IPv6 here, says the host"},
		{"neither: the host's want is said", netip.Addr{}, netip.Addr{}, "no IPv6 here, says the host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := forwardtest.NewMemory(hostSelf)
			mem.Self6 = tc.backend6
			g := &forward.Gateway{Backend: mem, Self: hostSelf, Self6: forward.SelfIPv6{Addr: tc.gateway6, Why: "no IPv6 here, says the host"}}
			r, err := forward.Reconcile(ctx, g, cfg, forward.ReconcileOptions{Mode: forward.ModeApply})
			if err != nil {
				t.Fatal(err)
			}
			var failed []forward.Outcome
			for _, o := range r.Result.Outcomes {
				if o.Err != nil {
					failed = append(failed, o)
				}
			}
			if len(failed) != 1 || failed[0].Change.Key.Family != forward.IPv6 || !errors.Is(failed[0].Err, forward.ErrNoIPv6) ||
				!strings.Contains(failed[0].Err.Error(), tc.want) || !strings.Contains(failed[0].Change.Reason, tc.want) {
				t.Fatalf("outcomes %+v, want only the pinhole failing with %q", r.Result.Outcomes, tc.want)
			}
			if got, _ := mem.List(ctx); len(got) != 1 || got[0].Family != forward.IPv4 {
				t.Errorf("gateway holds %v, want the IPv4 forward alone", got)
			}
		})
	}
}

// TestRuleStatesPerFamily: the loop's rule states say which family of a
// dual rule is down: the gateway made the forward and cannot open the
// pinhole.
func TestRuleStatesPerFamily(t *testing.T) {
	h := start(t, dualConfig(t), func(h *harness) {
		h.loop.Connect = func(context.Context) (*forward.Gateway, error) {
			return &forward.Gateway{Backend: h.gw, Self: self, Self6: forward.SelfIPv6{Addr: hostSelf6}}, nil
		}
	})
	rep := h.obs.report(t)
	if len(rep.Rules) != 1 || len(rep.Rules[0].Families) != 2 || len(rep.Rules[0].Down) != 1 || rep.Rules[0].Down[0] != forward.IPv6 {
		t.Errorf("rule states %+v, want minecraft down on ipv6 alone", rep.Rules)
	}
}
