package forward_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

// dialed counts what a Dialer opened.
type dialed struct {
	mu       sync.Mutex
	backends []string // the backend asked for at each open
	props    forward.Properties
	warn     []string
}

func (d *dialed) open(_ context.Context, backend string) (*forward.Gateway, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.backends = append(d.backends, backend)
	p := d.props
	g := forward.NewGateway(&fakeBackend{Memory: forwardtest.NewMemory(lanSelf), props: p, warnings: d.warn})
	if backend == "" {
		g.Detection = &forward.Detection{Answered: []string{p.Name}, Why: "it answered"}
	}
	return g, nil
}

func TestDialerKeepsAListerBetweenPasses(t *testing.T) {
	d := &dialed{props: forward.Properties{Name: "upnp"}}
	var logs []string
	dl := &forward.Dialer{Open: d.open, Logf: func(f string, a ...any) { logs = append(logs, f) }}
	for _, fail := range []bool{false, false, true, false} {
		g, err := dl.Connect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var passErr error
		if fail {
			passErr = errors.New("reset")
		}
		g.Done(passErr)
	}
	if strings.Join(d.backends, ",") != ",upnp" {
		t.Errorf("opens asked for %q; want one detection, then upnp pinned after the failure", d.backends)
	}
	if len(logs) != 1 {
		t.Errorf("logged %v; want the chosen gateway once", logs)
	}
	dl.Reset()
	g, _ := dl.Connect(context.Background())
	g.Done(nil)
	if d.backends[len(d.backends)-1] != "" {
		t.Errorf("after Reset the dialer asked for %q; want detection again", d.backends)
	}
}

func TestDialerOpensRecordsEveryPass(t *testing.T) {
	d := &dialed{props: forward.Properties{Name: "pcp", ListsFromState: true}, warn: []string{"the gateway restarted"}}
	var warned []string
	dl := &forward.Dialer{Open: d.open, Warnf: func(f string, a ...any) { warned = append(warned, a[0].(string)) }}
	for range 3 {
		g, err := dl.Connect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		g.Done(nil)
	}
	if len(d.backends) != 3 || d.backends[1] != "pcp" {
		t.Errorf("opens %q; want one per pass, pinned to pcp after the first", d.backends)
	}
	if len(warned) != 3 {
		t.Errorf("warnings reported %v; want each pass's", warned)
	}
}

func TestDialerHoldsTheRunLockPerPass(t *testing.T) {
	dir := t.TempDir()
	d := &dialed{props: forward.Properties{Name: "upnp"}}
	dl := &forward.Dialer{Open: d.open, Lock: func() (*forward.RunLock, error) { return forward.LockRun(dir, time.Second) }}
	g, err := dl.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := forward.LockRun(dir, 50*time.Millisecond); err == nil || !strings.Contains(err.Error(), "another portfwd is changing the gateway") {
		t.Errorf("a second run during a pass: %v; want it to wait and give up", err)
	}
	g.Done(nil)
	l, err := forward.LockRun(dir, 50*time.Millisecond)
	if err != nil {
		t.Fatalf("after the pass the lock is still held: %v", err)
	}
	l.Unlock()
	l.Unlock() // a second Unlock does nothing
}
