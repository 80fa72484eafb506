package forward

import (
	"context"
	"fmt"
)

// Outcome is what became of one change.
type Outcome struct {
	Change  Change
	Granted *Mapping // the mapping as the gateway granted it (Create, Update, Renew)
	Err     error
	Note    string // something the user should know even though it worked
}

// Result holds one outcome per change of the plan, in plan order.
type Result struct {
	Outcomes []Outcome
}

// Failed is the number of changes that did not take effect.
func (r Result) Failed() int {
	n := 0
	for _, o := range r.Outcomes {
		if o.Err != nil {
			n++
		}
	}
	return n
}

// Made is the number of changes that took effect on the gateway: noops and
// conflicts make no call, and failures made no change.
func (r Result) Made() int {
	n := 0
	for _, o := range r.Outcomes {
		if o.Err == nil && o.Change.Action != Noop && o.Change.Action != Conflict {
			n++
		}
	}
	return n
}

// Progress hears how far an apply is: done of total changes that talk to
// the gateway (creates, updates, renewals, deletes), once before the first
// (done 0) and after each. It runs on the applying goroutine, between
// changes, and must return quickly.
type Progress func(done, total int)

// Apply carries out plan on b. It writes only what differs: a Noop makes no
// call. One failing change does not stop the others; each outcome carries
// its own error as the backend worded it (backends name the mapping and say
// what to do), and Result.Failed counts them. A change that failed because
// the gateway was slow (ErrSlowGateway) is no exception: backends bound
// each request on its own, so the next change gets its own time. A
// cancelled ctx fails the changes not yet made. progress, when not nil,
// hears how far it is.
func Apply(ctx context.Context, b Backend, plan Plan, progress Progress) Result {
	res := Result{Outcomes: make([]Outcome, 0, len(plan.Changes))}
	total := len(plan.Changes) - plan.Count(Noop) - plan.Count(Conflict)
	done := 0
	if progress != nil && total > 0 {
		progress(done, total)
	}
	for _, c := range plan.Changes {
		if err := ctx.Err(); err != nil && c.Action != Noop {
			res.Outcomes = append(res.Outcomes, Outcome{Change: c, Err: err})
			continue
		}
		res.Outcomes = append(res.Outcomes, applyOne(ctx, b, c))
		if progress != nil && c.Action != Noop && c.Action != Conflict {
			done++
			progress(done, total)
		}
	}
	return res
}

func applyOne(ctx context.Context, b Backend, c Change) Outcome {
	out := Outcome{Change: c}
	switch c.Action {
	case Noop:
	case Conflict:
		out.Err = &ConflictError{Want: *c.After, Holder: *c.Before}
	case Delete:
		out.Err = b.Delete(ctx, *c.Before)
	case Update: // a replacement: see Action.IsReplace
		if err := b.Delete(ctx, *c.Before); err != nil {
			out.Err = fmt.Errorf("replacing mapping %s: %w", c.Key, err)
			return out
		}
		out.Granted, out.Note, out.Err = add(ctx, b, *c.After)
	case Create, Renew:
		out.Granted, out.Note, out.Err = add(ctx, b, *c.After)
	}
	return out
}

func add(ctx context.Context, b Backend, want Mapping) (*Mapping, string, error) {
	got, err := b.Add(ctx, want)
	if err != nil {
		return nil, "", err
	}
	return &got, grantNote(want, got), nil
}

// grantNote explains a grant that differs from the request, so a user is
// not surprised later: another external port (external_port: any), and a
// mapping that expires, or one that never does.
func grantNote(want, got Mapping) string {
	lease := leaseNote(want, got)
	if got.ExternalPort == want.ExternalPort {
		return lease
	}
	port := fmt.Sprintf("the gateway granted external port %d instead", got.ExternalPort)
	if lease == "" {
		return port
	}
	return port + "; " + lease
}

// leaseNote explains a granted lease that differs from the one requested.
func leaseNote(want, got Mapping) string {
	switch {
	case want.Lease > 0 && got.Lease == 0:
		return "the gateway only grants permanent leases; mapped permanently (portfwd down removes it)"
	case want.Lease == 0 && got.Lease > 0:
		return "the gateway grants " + LeaseString(got.Lease) + " instead of a permanent lease; apply renews it in time"
	case want.Lease > 0 && got.Lease < want.Lease*9/10:
		return "the gateway shortened the lease to " + LeaseString(got.Lease) + "; run apply again before it runs out"
	}
	return ""
}
