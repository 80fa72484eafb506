package forward

import (
	"context"
	"errors"
	"fmt"
)

// ErrNoIPv6 marks an IPv6 pinhole that cannot be opened: the backend has
// no IPv6 (Properties.IPv6 false), or this host has no stable global IPv6
// address for a rule for self.
var ErrNoIPv6 = errors.New("cannot open an IPv6 pinhole")

// NoIPv6Error says why an IPv6 pinhole cannot be opened and what to do.
type NoIPv6Error struct {
	Key     Key
	Backend string // the backend without IPv6, or "" when the host has none
	Why     string // why this host has no IPv6 address (SelfIPv6.Why)
}

func (e *NoIPv6Error) Error() string {
	switch {
	case e.Backend == "natpmp":
		return fmt.Sprintf("opening pinhole %s: NAT-PMP has no IPv6 (RFC 6886 maps IPv4 only): use backend pcp, its successor, or upnp if the router speaks them, or family: ipv4 for this rule", e.Key)
	case e.Backend != "":
		return fmt.Sprintf("opening pinhole %s: the %s backend cannot open IPv6 pinholes: use family: ipv4 for this rule, or a backend that opens them (upnp, pcp, or iptables on the router itself)", e.Key, e.Backend)
	case e.Why != "":
		return fmt.Sprintf("opening pinhole %s: %s", e.Key, e.Why)
	}
	return fmt.Sprintf("opening pinhole %s: this host has no stable global IPv6 address: check that the router hands out IPv6 (SLAAC or DHCPv6)", e.Key)
}

func (e *NoIPv6Error) Unwrap() error { return ErrNoIPv6 }

// refuseIPv6 is the NoIPv6Error for want on a backend with props, or nil
// when want can be made.
func refuseIPv6(props Properties, want Mapping, why string) error {
	switch {
	case want.Family != IPv6:
		return nil
	case !want.InternalHost.IsValid(): // the host's want comes first: no backend helps it
		return &NoIPv6Error{Key: want.Key, Why: why}
	case !props.IPv6:
		return &NoIPv6Error{Key: want.Key, Backend: props.Name}
	}
	return nil
}

// explainIPv6 gives each change that would open a pinhole the backend or
// the host cannot open the reason, so that plan says it before apply
// fails on it.
func explainIPv6(plan *Plan, props Properties, self6 SelfIPv6) {
	for i, c := range plan.Changes {
		if c.After == nil || !makesCall(c.Action) {
			continue
		}
		if err := refuseIPv6(props, *c.After, self6.Why); err != nil {
			plan.Changes[i].Reason = err.Error()
		}
	}
}

// whyNoIPv6 adds to each pinhole refused for want of an IPv6 address on
// this host why it has none (SelfIPv6.Why), which Apply cannot know.
func whyNoIPv6(res Result, why string) {
	for _, o := range res.Outcomes {
		var e *NoIPv6Error
		if errors.As(o.Err, &e) && e.Backend == "" && e.Why == "" {
			e.Why = why
		}
	}
}

// familyGuard refuses, before asking the backend, the pinholes it or this
// host cannot open (refuseIPv6).
type familyGuard struct {
	changer
	props Properties
}

// guardedBatch is a Batch whose adds a familyGuard checks first.
type guardedBatch struct {
	familyGuard
	tx Batch
}

// Commit commits the batch.
func (g guardedBatch) Commit(ctx context.Context) error { return g.tx.Commit(ctx) }

// Add refuses what refuseIPv6 refuses, else asks the backend.
func (g familyGuard) Add(ctx context.Context, m Mapping) (Mapping, error) {
	if err := refuseIPv6(g.props, m, ""); err != nil {
		return Mapping{}, err
	}
	return g.changer.Add(ctx, m)
}
