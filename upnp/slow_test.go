package upnp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// discoverSlow discovers the fake f over loopback with each request
// bounded by timeout.
func discoverSlow(t *testing.T, f *fakeIGD, timeout time.Duration) *IGD {
	t.Helper()
	opts := loopbackOptions("127.0.0.1", newSSDPResponder(t, f.rootURL()), nil)
	opts.RequestTimeout = timeout
	g, err := Discover(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// applyRules applies n rules on ports 30000 and up to g, under no
// deadline but the test's hang detector.
func applyRules(t *testing.T, g *IGD, n int) forward.Result {
	t.Helper()
	var src strings.Builder
	src.WriteString("rules:\n")
	for i := range n {
		fmt.Fprintf(&src, "  - {name: r%d, protocol: tcp, external_port: %d}\n", i, 30000+i)
	}
	cfg, _, err := forward.Load(context.Background(), "portfwd.yaml", []byte(src.String()), forward.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // hang detector
	defer cancel()
	r, err := forward.Reconcile(ctx, forward.NewGateway(g), cfg, forward.ReconcileOptions{Mode: forward.ModeApply})
	if err != nil {
		t.Fatal(err)
	}
	return *r.Result
}

// TestSlowGatewayEachRequestOwnTimeout: a gateway that takes 80 ms for
// every AddPortMapping, each within the 300 ms request timeout though
// eight of them are not: every rule is made.
func TestSlowGatewayEachRequestOwnTimeout(t *testing.T) {
	f := newFakeIGD(t, "igd2-rootdesc.xml")
	f.slow = func(action string, _ map[string]string) time.Duration {
		if action == "AddPortMapping" {
			return 80 * time.Millisecond
		}
		return 0
	}
	g := discoverSlow(t, f, 300*time.Millisecond)
	res := applyRules(t, g, 8)
	if res.Failed() != 0 || res.Made() != 8 {
		t.Fatalf("made %d, failed %d: %+v; want all 8 made", res.Made(), res.Failed(), res.Outcomes)
	}
	if n := f.count("AddPortMapping"); n != 8 {
		t.Errorf("the gateway holds %d AddPortMapping; want 8", n)
	}
}

// TestSlowGatewayHangSaysSlow: an AddPortMapping the gateway does not
// answer within the request timeout fails as slow, naming the flag to
// raise and not in goupnp's words, and the rules after it still get their
// own time and are made.
func TestSlowGatewayHangSaysSlow(t *testing.T) {
	f := newFakeIGD(t, "igd2-rootdesc.xml")
	f.slow = func(action string, args map[string]string) time.Duration {
		if action == "AddPortMapping" && args["NewExternalPort"] == "30001" {
			return time.Minute // until portfwd hangs up
		}
		return 0
	}
	g := discoverSlow(t, f, 200*time.Millisecond)
	res := applyRules(t, g, 3)
	if res.Made() != 2 || res.Failed() != 1 {
		t.Fatalf("made %d, failed %d: %+v; want the two others made", res.Made(), res.Failed(), res.Outcomes)
	}
	for _, o := range res.Outcomes {
		if o.Change.Key.ExternalPort != 30001 {
			continue
		}
		msg := fmt.Sprint(o.Err)
		t.Logf("tcp/30001: %s", msg)
		if !errors.Is(o.Err, forward.ErrSlowGateway) || strings.Contains(msg, "goupnp") ||
			!strings.Contains(msg, "tcp/30001") || !strings.Contains(msg, "did not answer AddPortMapping within 200ms") ||
			!strings.Contains(msg, "raise --timeout (now 200ms)") {
			t.Errorf("tcp/30001 failed with %q; want the slow-router message", msg)
		}
	}
}

// TestDiscoverAnswerAfterDelay: a router that answers M-SEARCH late, but
// within the discovery timeout, is found (scaled down from a router that
// answers after 6 s found with --timeout 10s).
func TestDiscoverAnswerAfterDelay(t *testing.T) {
	f := newFakeIGD(t, "igd2-rootdesc.xml")
	r := newSSDPResponder(t, f.rootURL())
	r.mu.Lock()
	r.delay = 400 * time.Millisecond
	r.mu.Unlock()
	opts := loopbackOptions("127.0.0.1", r, nil)
	opts.Timeout = 3 * time.Second
	if _, err := Discover(context.Background(), opts); err != nil {
		t.Fatalf("Discover = %v; want the late answer taken", err)
	}
}
