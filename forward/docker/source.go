package docker

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// DefaultOwner is the name the containers' forwards are tagged with
// (pf:docker:<rule>): a config name of its own, so the file's rules and
// the containers' never own each other's forwards. Two Docker hosts
// behind one router share it: ownership also takes the internal host
// (forward.Config.Ownership), so each manages only its own.
const DefaultOwner = "docker"

// DefaultGrace is how long a stopped container's forward stays before it
// is removed: a restart (docker restart, a crash and restart policy)
// within it does not flap the router.
const DefaultGrace = 2 * time.Second

// Source is the rules running containers ask for. Config is safe to call
// from one goroutine at a time (Watch does).
type Source struct {
	Engine Engine
	// Owner is the config name of the containers' forwards; DefaultOwner
	// when empty.
	Owner string
	// Gateway and ProbeServer are the file's: the containers' forwards go
	// to the same router, with the same lease.
	Gateway     forward.GatewaySettings
	ProbeServer forward.ProbeServer
	// Grace keeps a stopped container's rules this long (DefaultGrace
	// when zero; negative: none).
	Grace time.Duration
	// Now is the clock, for tests; nil means time.Now.
	Now func() time.Time

	mu   sync.Mutex
	kept map[string]kept // the rules of the last Config, by name
}

// kept is one rule a Config returned, with when its container was last
// seen asking for it.
type kept struct {
	rule forward.Rule
	seen time.Time
}

// Snapshot is one reading of the engine.
type Snapshot struct {
	Config *forward.Config
	// Problems are the containers skipped, each naming the container and
	// the label, in container order.
	Problems []error
	// Recheck, when not zero, is when a rule kept in grace runs out: the
	// caller reads again then.
	Recheck time.Time
}

// owner is Owner or DefaultOwner.
func (s *Source) owner() string {
	if s.Owner == "" {
		return DefaultOwner
	}
	return s.Owner
}

// Read lists the running containers and returns the config of the rules
// they ask for, with the rules of containers gone less than Grace ago.
// An error (the engine did not answer) leaves the kept rules as they
// were: the caller keeps the forwards it has.
func (s *Source) Read(ctx context.Context) (Snapshot, error) {
	list, err := s.Engine.Containers(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	current, problems := s.collect(ctx, list)
	s.mu.Lock()
	defer s.mu.Unlock()
	rules, recheck := s.merge(current)
	// No File: nothing to remember for status's orphans (a config is
	// orphaned when its file is gone), and none to reload.
	cfg := &forward.Config{Name: s.owner(), Gateway: s.Gateway, ProbeServer: s.ProbeServer, Rules: rules}
	return Snapshot{Config: cfg, Problems: problems, Recheck: recheck}, nil
}

// collect is the rules of every container that asks for forwards, in the
// order of their names; a container whose labels do not parse, or whose
// forwards clash with an earlier container's, is skipped with a problem.
func (s *Source) collect(ctx context.Context, list []Container) ([]forward.Rule, []error) {
	list = slices.Clone(list)
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	var out []forward.Rule
	var problems []error
	for _, c := range list {
		if !asks(c) {
			continue
		}
		rs, err := rules(ctx, s.owner(), c)
		if err == nil {
			err = clash(c, rs, out)
		}
		if err != nil {
			problems = append(problems, err)
			continue
		}
		out = append(out, rs...)
	}
	return out, problems
}

// clash says which rule of an earlier container holds a name or an
// external port one of rs wants.
func clash(c Container, rs, earlier []forward.Rule) error {
	for _, r := range rs {
		for _, e := range earlier {
			switch {
			case r.Name == e.Name:
				return fmt.Errorf("container %s: rule name %q is taken by another container's forward: set %s", forward.Printable(c.Name), r.Name, LabelName)
			case overlaps(r, e):
				return fmt.Errorf("container %s: external port %s is already forwarded for %s (%s): the router has one forward per port", forward.Printable(c.Name), r.External, e.Name, e.Description)
			}
		}
	}
	return nil
}

// overlaps reports whether a and b want a common external port with a
// common protocol.
func overlaps(a, b forward.Rule) bool {
	if !a.External.Overlaps(b.External) {
		return false
	}
	return slices.ContainsFunc(a.Protocols, func(p forward.Protocol) bool { return slices.Contains(b.Protocols, p) })
}

// merge is current plus the rules kept from before whose container was
// seen less than Grace ago and whose ports no current rule took, sorted
// by name, and when the first of those runs out. Callers hold s.mu.
func (s *Source) merge(current []forward.Rule) ([]forward.Rule, time.Time) {
	now := s.now()
	next := make(map[string]kept, len(current))
	for _, r := range current {
		next[r.Name] = kept{rule: r, seen: now}
	}
	var recheck time.Time
	for name, k := range s.kept {
		until := k.seen.Add(s.grace())
		if _, ok := next[name]; ok || !now.Before(until) || slices.ContainsFunc(current, func(r forward.Rule) bool { return overlaps(r, k.rule) }) {
			continue
		}
		next[name] = k
		if recheck.IsZero() || until.Before(recheck) {
			recheck = until
		}
	}
	s.kept = next
	out := make([]forward.Rule, 0, len(next))
	for _, k := range next {
		out = append(out, k.rule)
	}
	slices.SortFunc(out, func(a, b forward.Rule) int { return strings.Compare(a.Name, b.Name) })
	return out, recheck
}

func (s *Source) grace() time.Duration {
	if s.Grace == 0 {
		return DefaultGrace
	}
	return max(s.Grace, 0)
}

func (s *Source) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}
