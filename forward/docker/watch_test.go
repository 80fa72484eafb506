package docker

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// hang bounds the waits of the watcher tests: a hang detector only.
const hang = 10 * time.Second

// TestWatcherFollowsEvents: the first read is handed on, an event that
// changes the rules hands on the new config, one that changes nothing
// does not, and an engine that stops answering hands on nothing (the
// forwards stay) and is warned of.
func TestWatcherFollowsEvents(t *testing.T) {
	e := newFake()
	var mu sync.Mutex
	var warns []string
	updates := make(chan *forward.Config, 10)
	w := &Watcher{Source: &Source{Engine: e, Grace: -1}, Update: func(c *forward.Config) { updates <- c },
		Warnf: func(f string, a ...any) { mu.Lock(); warns = append(warns, f); mu.Unlock() }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	if c := next(t, updates); len(c.Rules) != 0 {
		t.Fatalf("first config %v, want no rules", names(c))
	}
	e.set(bridged("mc", map[string]string{LabelForward: "published"}, pub(25565, 8080, "tcp")))
	e.events <- Event{Action: "start", Container: "mc"}
	if c := next(t, updates); strings.Join(names(c), ",") != "mc" {
		t.Fatalf("after start: %v, want mc", names(c))
	}
	e.events <- Event{Action: "rename", Container: "mc"} // nothing changed
	e.mu.Lock()
	e.err = errors.New("engine gone")
	e.mu.Unlock()
	e.events <- Event{Action: "die", Container: "mc"}
	e.events <- Event{Action: "destroy", Container: "mc"} // the previous read is done
	select {
	case c := <-updates:
		t.Fatalf("an update %v without a change or with the engine down", names(c))
	default:
	}
	mu.Lock()
	defer mu.Unlock()
	if len(warns) == 0 || !strings.Contains(warns[0], "keeping the containers' forwards") {
		t.Errorf("warnings %q, want the engine's failure said", warns)
	}
}

func next(t *testing.T, ch <-chan *forward.Config) *forward.Config {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(hang):
		t.Fatal("no config handed on")
		return nil
	}
}
