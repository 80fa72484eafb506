package forward

import (
	"context"
	"os"
	"reflect"
	"strings"
	"time"
)

// Reloader reads a running Loop's config file again: when Hint fires
// (SIGHUP) and whenever the file changes (its modification time or size,
// polled every second, read once it has stopped changing). A file that
// does not load is rejected with every problem on one line, and the loop
// keeps the config it has. A new gateway section resets the Dialer, so
// the next pass opens, and detects, the gateway anew.
type Reloader struct {
	Path   string
	Load   func(ctx context.Context) (*Config, error)
	Loop   *Loop
	Dialer *Dialer          // nil: none to reset
	Hint   <-chan os.Signal // SIGHUP, or any other nudge
	// Logf and Warnf report reloads and rejections; nil: silent.
	Logf, Warnf func(format string, a ...any)
	// Poll is how often the file is looked at; zero means a second.
	Poll time.Duration
}

// Run watches until ctx ends. The Loop's config is the one it started
// with until a reload hands it another.
func (r *Reloader) Run(ctx context.Context) {
	current := r.Loop.Config
	last := StampOf(r.Path)
	tick := time.NewTicker(orDefault(r.Poll, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.Hint:
			last = StampOf(r.Path)
			current = r.reload(ctx, current, "SIGHUP")
		case <-tick.C:
			now := StampOf(r.Path)
			if now == last || now == (Stamp{}) {
				continue
			}
			last = settled(ctx, r.Path, now)
			current = r.reload(ctx, current, "the file changed")
		}
	}
}

// reload loads the file and hands a valid config to the loop; it returns
// the config the loop now runs.
func (r *Reloader) reload(ctx context.Context, old *Config, why string) *Config {
	cfg, err := r.Load(ctx)
	if err != nil {
		r.say(r.Warnf, "rejected the new config, keeping the running set: %s", OneLine(err))
		return old
	}
	if !reflect.DeepEqual(old.Gateway, cfg.Gateway) && r.Dialer != nil {
		r.Dialer.Reset()
	}
	r.say(r.Logf, "reloaded (%s): %s", why, RuleChanges(old, cfg))
	r.Loop.Reload(cfg)
	return cfg
}

func (r *Reloader) say(f func(string, ...any), format string, a ...any) {
	if f != nil {
		f(format, a...)
	}
}

// settled waits until the file stops changing for a moment, so that a
// file read half-written (truncated, then written) is not taken for the
// new config.
func settled(ctx context.Context, path string, s Stamp) Stamp {
	for range 10 {
		select {
		case <-ctx.Done():
			return s
		case <-time.After(200 * time.Millisecond):
		}
		now := StampOf(path)
		if now == s {
			return s
		}
		s = now
	}
	return s
}

// RuleChanges says what a new config changed: "+rule ssh, -rule game,
// ~rule web", and whether the gateway section changed.
func RuleChanges(old, cfg *Config) string {
	var out []string
	for _, r := range cfg.Rules {
		was, ok := old.Rule(r.Name)
		switch {
		case !ok:
			out = append(out, "+rule "+r.Name)
		case !sameRule(was, r):
			out = append(out, "~rule "+r.Name)
		}
	}
	for _, r := range old.Rules {
		if _, ok := cfg.Rule(r.Name); !ok {
			out = append(out, "-rule "+r.Name)
		}
	}
	if !reflect.DeepEqual(old.Gateway, cfg.Gateway) {
		out = append(out, "gateway settings changed")
	}
	if len(out) == 0 {
		return "no rule changed"
	}
	return strings.Join(out, ", ")
}

// sameRule compares two rules apart from where they stand in the file.
func sameRule(a, b Rule) bool {
	a.Line, b.Line = 0, 0
	return reflect.DeepEqual(a, b)
}
