package forward_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

// TestWithinRequestTimeoutSaysSlow: a request the gateway leaves
// unanswered past its timeout is a *SlowError that names the request and
// the flag to raise, and is ErrSlowGateway and DeadlineExceeded.
func TestWithinRequestTimeoutSaysSlow(t *testing.T) {
	err := forward.WithinRequestTimeout(context.Background(), 50*time.Millisecond, "AddPortMapping", func(ctx context.Context) error {
		<-ctx.Done()
		return errors.New(`goupnp: error performing SOAP HTTP request: Post "http://192.168.1.1/ctl/IPConn": context deadline exceeded`)
	})
	var se *forward.SlowError
	if !errors.As(err, &se) || se.After != 50*time.Millisecond || !errors.Is(err, forward.ErrSlowGateway) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %#v; want a *SlowError of 50ms", err)
	}
	want := "the gateway did not answer AddPortMapping within 50ms; it may be slow with many mappings: raise --timeout (now 50ms)"
	if err.Error() != want {
		t.Errorf("err = %q\nwant %q", err, want)
	}
}

// TestWithinRequestTimeoutEachOwn: every request has its whole timeout,
// however long the ones before took; an answer, and an interruption, pass
// through as they are.
func TestWithinRequestTimeoutEachOwn(t *testing.T) {
	ctx := context.Background()
	for i := range 4 { // 4 × 40 ms, each within 200 ms, together within none of them
		err := forward.WithinRequestTimeout(ctx, 200*time.Millisecond, "r", func(ctx context.Context) error {
			select {
			case <-time.After(40 * time.Millisecond):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	refused := errors.New("UPnP error 718")
	if err := forward.WithinRequestTimeout(ctx, time.Second, "r", func(context.Context) error { return refused }); err != refused {
		t.Errorf("an answer became %v", err)
	}
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	err := forward.WithinRequestTimeout(stopped, time.Second, "r", func(ctx context.Context) error { return ctx.Err() })
	if !errors.Is(err, context.Canceled) || errors.Is(err, forward.ErrSlowGateway) {
		t.Errorf("Ctrl-C became %v", err)
	}
	// The caller's deadline, sooner than the timeout, is the caller's.
	soon, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	err = forward.WithinRequestTimeout(soon, time.Second, "r", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, forward.ErrSlowGateway) {
		t.Errorf("the caller's deadline became %v", err)
	}
}

// TestReconcileProgress: Progress hears done of the changes that talk to
// the gateway — creates and deletes, not the noop or the conflict —
// from 0 to all of them.
func TestReconcileProgress(t *testing.T) {
	gw := forwardtest.NewMemory(lanSelf)
	gw.Put(forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: 2222}, InternalHost: lanOther, InternalPort: 22,
		Description: "someone's ssh", Enabled: true})
	gw.Put(forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: 9000}, InternalHost: lanSelf, InternalPort: 9000,
		Description: forward.Tag("portfwd", "old"), Enabled: true})
	var heard [][2]int
	r := reconcileOn(t, gw, mcAndSSH+"  - {name: web, protocol: tcp, external_port: 8080}\n", forward.ReconcileOptions{Mode: forward.ModeApply, Prune: true,
		Progress: func(done, total int) { heard = append(heard, [2]int{done, total}) }})
	if r.Plan.Count(forward.Conflict) != 1 || r.Plan.Count(forward.Delete) != 1 || r.Plan.Count(forward.Create) != 2 {
		t.Fatalf("plan = %+v; want 2 creates, a delete and a conflict", r.Plan)
	}
	if want := [][2]int{{0, 3}, {1, 3}, {2, 3}, {3, 3}}; !slices.Equal(heard, want) {
		t.Errorf("progress heard %v; want %v", heard, want)
	}
}

// TestDetectWaitsForASlowRouter: a router that answers after the 2 s of
// detection's long pass is found when its opener may wait longer (the
// CLI's --timeout); it was never found before.
func TestDetectWaitsForASlowRouter(t *testing.T) {
	late := forward.DetectLongBudget + 300*time.Millisecond
	o := forward.Opener{Name: "upnp", Detect: true, Wait: late + 2*time.Second, Open: func(ctx context.Context, _ bool) (forward.Backend, error) {
		select {
		case <-time.After(late):
			return forwardtest.NewMemory(lanSelf), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}}
	g, err := forward.Detect(context.Background(), []forward.Opener{o}, nil, nil)
	if err != nil || g.Detection == nil || !strings.Contains(strings.Join(g.Detection.Answered, ","), "upnp") {
		t.Fatalf("Detect = %v, %v; want the slow router found", g, err)
	}
}
