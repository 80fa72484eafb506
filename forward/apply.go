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
		if o.Err == nil && makesCall(o.Change.Action) {
			n++
		}
	}
	return n
}

// makesCall reports whether a change of action a calls the backend: noops,
// conflicts and forwards held by someone else do not.
func makesCall(a Action) bool { return a != Noop && a != Conflict && a != Held }

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
//
// A backend that can batch (Batcher, found with As) gets the whole plan in
// one batch. When the batch cannot begin, the changes go one by one; when
// its Commit fails, the changes it had staged are made again one by one,
// so each outcome still says what became of its own change.
func Apply(ctx context.Context, b Backend, plan Plan, progress Progress) Result {
	p := newTally(plan.Changes, progress)
	props := b.Properties()
	if bt, ok := As[Batcher](b); ok && p.total > 0 {
		if tx, err := bt.Begin(ctx); err == nil {
			res := applyBatch(ctx, familyGuard{b, props}, guardedBatch{familyGuard{tx, props}, tx}, plan.Changes)
			p.finish()
			return res
		}
	}
	return applyEach(ctx, familyGuard{b, props}, plan.Changes, p)
}

// tally tells a Progress how far an apply is.
type tally struct {
	progress    Progress
	done, total int
}

// newTally counts the changes that call the backend and reports the start.
func newTally(changes []Change, progress Progress) *tally {
	t := &tally{progress: progress}
	for _, c := range changes {
		if makesCall(c.Action) {
			t.total++
		}
	}
	if progress != nil && t.total > 0 {
		progress(0, t.total)
	}
	return t
}

// step counts change c as done.
func (t *tally) step(c Change) {
	if t != nil && t.progress != nil && makesCall(c.Action) {
		t.done++
		t.progress(t.done, t.total)
	}
}

// finish reports every change done (a batch commits them at once).
func (t *tally) finish() {
	if t.progress != nil && t.total > 0 {
		t.progress(t.total, t.total)
	}
}

// changer is what carrying out a change needs: a Backend, or a Batch.
type changer interface {
	Add(ctx context.Context, m Mapping) (Mapping, error)
	Delete(ctx context.Context, m Mapping) error
}

// applyEach carries out changes on w one by one, in order, telling t.
func applyEach(ctx context.Context, w changer, changes []Change, t *tally) Result {
	res := Result{Outcomes: make([]Outcome, 0, len(changes))}
	for _, c := range changes {
		res.Outcomes = append(res.Outcomes, applyChecked(ctx, w, c))
		t.step(c)
	}
	return res
}

// applyBatch stages changes on tx and commits them. When the commit fails,
// every change that had staged is made again on b, alone.
func applyBatch(ctx context.Context, b changer, tx Batch, changes []Change) Result {
	res := applyEach(ctx, tx, changes, nil)
	if err := tx.Commit(ctx); err == nil {
		return res
	}
	for i, o := range res.Outcomes {
		if o.Err == nil && makesCall(o.Change.Action) {
			res.Outcomes[i] = applyChecked(ctx, b, o.Change)
		}
	}
	return res
}

// applyChecked is applyOne, unless ctx is done: then the change fails
// with ctx's error, and only a noop stands.
func applyChecked(ctx context.Context, w changer, c Change) Outcome {
	if err := ctx.Err(); err != nil && c.Action != Noop {
		return Outcome{Change: c, Err: err}
	}
	return applyOne(ctx, w, c)
}

func applyOne(ctx context.Context, w changer, c Change) Outcome {
	out := Outcome{Change: c}
	switch c.Action {
	case Noop:
	case Held:
		out.Note = c.Reason
	case Conflict:
		out.Err = &ConflictError{Want: *c.After, Holder: *c.Before}
	case Delete:
		out.Err = w.Delete(ctx, *c.Before)
	case Update: // a replacement: see Action.IsReplace
		if err := w.Delete(ctx, *c.Before); err != nil {
			out.Err = fmt.Errorf("replacing mapping %s: %w", c.Key, err)
			return out
		}
		out.Granted, out.Note, out.Err = add(ctx, w, *c.After)
	case Create, Renew:
		out.Granted, out.Note, out.Err = add(ctx, w, *c.After)
	}
	return out
}

func add(ctx context.Context, w changer, want Mapping) (*Mapping, string, error) {
	got, err := w.Add(ctx, want)
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
