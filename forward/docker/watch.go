package docker

import (
	"context"
	"reflect"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// DefaultResync is how often Watch reads every container even without an
// event: the safety net for an event the stream lost.
const DefaultResync = time.Minute

// resubscribeWait is the pause before subscribing again to an event
// stream that ended (the engine restarting); it doubles, up to
// resubscribeMax, while the engine does not answer, so an engine that is
// down for long costs a request (and a log line) every half minute.
const (
	resubscribeWait = 2 * time.Second
	resubscribeMax  = 30 * time.Second
)

// Watcher follows the engine and hands each new config to Update.
type Watcher struct {
	Source *Source
	// Update receives the containers' config whenever its rules change:
	// at start, after an event, at a grace's end or a resync.
	Update func(*forward.Config)
	// Resync is the period of a full read; DefaultResync when zero.
	Resync time.Duration
	// Logf hears what changed; Warnf the containers skipped and an engine
	// that does not answer. Nil: silent.
	Logf, Warnf func(format string, a ...any)

	last     []forward.Rule
	sent     bool
	problems map[string]bool // the problems last reported, said once each
	failed   bool            // the last read failed
}

// Run reads the engine at start and on every event until ctx ends. An
// engine that does not answer is retried; the config last handed on
// stays meanwhile.
func (w *Watcher) Run(ctx context.Context) {
	resync := time.NewTicker(orDefault(w.Resync, DefaultResync))
	defer resync.Stop()
	wait := resubscribeWait
	for ctx.Err() == nil {
		w.follow(ctx, resync.C)
		if !w.failed {
			wait = resubscribeWait
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		if w.failed {
			wait = min(2*wait, resubscribeMax)
		}
	}
}

// follow subscribes to the events, reads the engine, and reads it again
// on every event, grace end and resync until the stream ends.
func (w *Watcher) follow(ctx context.Context, resync <-chan time.Time) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, errs := w.Source.Engine.Events(ctx)
	recheck := w.read(ctx)
	for {
		var grace <-chan time.Time
		if !recheck.IsZero() {
			grace = time.After(time.Until(recheck))
		}
		select {
		case <-ctx.Done():
			return
		case err := <-errs:
			if ctx.Err() == nil {
				w.warnf("docker: the event stream ended: %v; subscribing again", err)
			}
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			w.logf("docker: container %s: %s", forward.Printable(ev.Container), forward.Printable(ev.Action))
		case <-grace:
		case <-resync:
		}
		recheck = w.read(ctx)
	}
}

// read reads the engine once and hands on a config that changed; it
// returns when to read again for a grace that runs out.
func (w *Watcher) read(ctx context.Context) time.Time {
	snap, err := w.Source.Read(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.warnf("docker: %v; keeping the containers' forwards as they are", err)
		}
		w.failed = true
		return time.Time{}
	}
	if w.failed {
		w.logf("docker: the engine answers again")
	}
	w.failed = false
	w.report(snap.Problems)
	if !w.sent || !reflect.DeepEqual(snap.Config.Rules, w.last) {
		w.sent, w.last = true, snap.Config.Rules
		w.Update(snap.Config)
	}
	return snap.Recheck
}

// report warns of each problem once, until it is gone and comes back.
func (w *Watcher) report(problems []error) {
	now := make(map[string]bool, len(problems))
	for _, p := range problems {
		now[p.Error()] = true
		if !w.problems[p.Error()] {
			w.warnf("docker: %v", p)
		}
	}
	w.problems = now
}

func (w *Watcher) logf(format string, a ...any) {
	if w.Logf != nil {
		w.Logf(format, a...)
	}
}

func (w *Watcher) warnf(format string, a ...any) {
	if w.Warnf != nil {
		w.Warnf(format, a...)
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
