package forward

import (
	"context"
	"fmt"
)

// Mode is what a reconcile does once it has planned.
type Mode int

// The modes of Reconcile.
const (
	// ModePlan reads the gateway and plans; nothing is changed.
	ModePlan Mode = iota
	// ModeApply makes the gateway match the config.
	ModeApply
	// ModeDown removes every mapping the config owns.
	ModeDown
)

// ReconcileOptions tune Reconcile.
type ReconcileOptions struct {
	Mode Mode
	// Prune deletes owned mappings no rule claims; ModeDown always prunes.
	Prune bool
	// Due reports whether a mapping found in place must be renewed now
	// although Diff leaves it (a Loop renews at half the lease granted,
	// which Diff cannot know). Nil: none.
	Due func(Key) bool
	// Progress, when not nil, hears how far the apply is (see Progress):
	// the CLI's N/M line on a terminal. Nil: nothing is told.
	Progress Progress
}

// Reconciliation is what one reconcile saw, planned and did.
type Reconciliation struct {
	Observed []Mapping   // the gateway's mappings, as List returned them
	Own      DiffOptions // which of them the config owns
	Plan     Plan
	Result   *Result // nil for ModePlan
}

// Reconcile is the one reconcile path plan, apply, down and the daemon's
// Loop share: it lists g's mappings, plans cfg against them with the
// config's ownership (Config.Ownership) and, unless opts.Mode is
// ModePlan, applies the plan. The error is a failure of the whole pass
// (listing failed); each change's failure is in the Result.
func Reconcile(ctx context.Context, g *Gateway, cfg *Config, opts ReconcileOptions) (*Reconciliation, error) {
	observed, err := g.Backend.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the gateway's mappings: %w", err)
	}
	props := g.Backend.Properties()
	r := &Reconciliation{Observed: observed, Own: cfg.Ownership(g.Hosts(), props)}
	r.Own.Prune = opts.Prune || opts.Mode == ModeDown
	var desired []Mapping
	if opts.Mode != ModeDown {
		desired = cfg.Desired(g.Hosts(), props)
	}
	r.Plan = Diff(desired, observed, r.Own)
	explainIPv6(&r.Plan, props, g.Self6)
	if opts.Mode == ModeDown {
		downReasons(&r.Plan)
	}
	if opts.Due != nil {
		renewDue(&r.Plan, opts.Due)
	}
	if opts.Mode != ModePlan {
		res := Apply(ctx, g.Backend, r.Plan, opts.Progress)
		whyNoIPv6(res, g.Self6.Why)
		r.Result = &res
	}
	return r, nil
}

// DownReason is the reason of each deletion down plans: the rule may
// well still be in the config, which Diff's prune reason would deny.
const DownReason = "portfwd down removes every forward the config owns"

// downReasons gives the deletions of a down their reason.
func downReasons(plan *Plan) {
	for i, c := range plan.Changes {
		if c.Action == Delete {
			plan.Changes[i].Reason = DownReason
		}
	}
}

// renewDue turns into renewals the noops whose mapping is due.
func renewDue(plan *Plan, due func(Key) bool) {
	for i, c := range plan.Changes {
		if c.Action == Noop && due(c.Key) {
			plan.Changes[i].Action = Renew
			plan.Changes[i].Reason = "half the lease is gone"
		}
	}
}
