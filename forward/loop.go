package forward

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Job is what the Loop does next: a cheap check, or a reconcile for a
// reason (ReconcileReport.Reason).
type Job int

// The jobs of the Loop.
const (
	JobCheck     Job = iota // look at the gateway; reconcile only when a held mapping is gone
	JobStart                // the loop began
	JobInterval             // Loop.Interval passed since the last reconcile
	JobRenew                // a mapping reached half its lease
	JobMissing              // the check found a held mapping gone from the gateway
	JobRestarted            // … all of them, on a gateway listed from records (epoch reset)
	JobExternal             // the gateway's WAN address changed
	JobReload               // Loop.Reload
	JobExit                 // CleanupOnExit deletes the owned mappings
	JobSource               // a rule source other than the file changed (containers started or stopped): Loop.Update
)

var jobNames = [...]string{"check", "start", "interval", "renew", "mapping missing", "gateway restarted",
	"external address changed", "config reloaded", "exit", "containers changed"}

// String is the job's name in logs and metrics: "start", "renew",
// "mapping missing", ….
func (j Job) String() string {
	if j < 0 || int(j) >= len(jobNames) {
		return "unknown"
	}
	return jobNames[j]
}

// Defaults of the Loop's timings. They keep the load on a UPnP router,
// whose every request is a round trip its firmware serves between other
// work, under 30 requests a minute in the steady state: a check every 3 s
// costs one request through Finder (20 a minute), and the full reconcile
// every 15 minutes lists the table, one request per mapping on an IGD:1 —
// with 60 rules and the default hour's lease, its two passes per half
// lease, one of them renewing every rule, add 6 to 8 a minute. A router
// reboot is found within two checks of the router answering again.
const (
	DefaultInterval    = 15 * time.Minute
	DefaultCheck       = 3 * time.Second
	DefaultPassTimeout = 30 * time.Second
	backoffMin         = time.Second
	backoffMax         = time.Minute
	// unreachableMax caps the back-off while the gateway cannot be
	// reached: a router that reboots is gone for a minute or two, and
	// its forwards must be back within seconds of it answering again. A
	// try costs the gateway one request at most (and nothing while it is
	// down), so trying every few seconds is no load.
	unreachableMax = 8 * time.Second
)

// Loop keeps a gateway equal to a config with nobody watching: a full
// reconcile at start, every Interval, when a lease is half gone and when a
// new config is loaded, and in between a cheap check every Check that
// reconciles at once when a mapping the loop holds is gone (a rebooted
// router, someone deleting it) or the WAN address changed. The check is
// one request where the backend can look a mapping up (Finder): one held
// mapping in turn, every tenth check the WAN address instead. Elsewhere it
// lists the gateway and asks the WAN address.
//
// A pass that cannot reach the gateway is retried with exponential
// back-off (1 s doubling to 8 s, ±20 % jitter) on a fresh Conn; changes that
// failed on a gateway that answered, for a reason other than a conflict or
// a refusal, are retried doubling to 1 min. Set the exported
// fields before Run; only Reload may be called while it runs.
type Loop struct {
	// Connect lends the loop a gateway for one pass; the loop calls its
	// Done when the pass ends.
	Connect  func(ctx context.Context) (*Gateway, error)
	Config   *Config
	Prune    bool          // delete owned mappings no rule claims, as apply --prune
	Interval time.Duration // full reconcile; DefaultInterval when zero
	Check    time.Duration // the cheap check; DefaultCheck when zero
	// PassTimeout bounds each pass; DefaultPassTimeout when zero.
	PassTimeout time.Duration
	// CleanupOnExit deletes every owned mapping when ctx ends.
	CleanupOnExit bool
	Observer      Observer                      // nil: NopObserver
	Logf          func(format string, a ...any) // one line per change and decision; nil: silent

	// Now and After are the clock, for tests; nil means the time package.
	Now   func() time.Time
	After func(d time.Duration) <-chan time.Time

	once     sync.Once
	mu       sync.Mutex
	pending  *Config       // the config Reload or Update handed in, not yet taken
	why      Job           // the job pending is reconciled as: JobReload or Update's
	reloaded chan struct{} // signals pending

	held     map[Key]held // the mappings the last reconcile left on the gateway
	checks   int          // checks through Finder so far
	turn     int          // which held mapping such a check asks about next, in key order
	fellBack bool         // such a check failed on a gateway that lists: logged once
	lastFull time.Time
	external netip.Addr
	failures int           // gateway failures in a row
	retry    time.Duration // the wait after the last failure
	redo     time.Time     // when to run redoJob again, for changes that failed; zero: none
	redoJob  Job
	redos    int // passes in a row with failed changes
}

// held is one mapping the loop made or found in place.
type held struct {
	m        Mapping
	expires  time.Time     // zero: permanent
	lifetime time.Duration // the lease it was granted: renewed at half of it
}

func (l *Loop) init() {
	l.once.Do(func() {
		l.reloaded = make(chan struct{}, 1)
		if l.Now == nil {
			l.Now = time.Now
		}
		if l.After == nil {
			l.After = time.After
		}
		if l.Observer == nil {
			l.Observer = NopObserver{}
		}
		l.Interval = orDefault(l.Interval, DefaultInterval)
		l.Check = orDefault(l.Check, DefaultCheck)
		l.PassTimeout = orDefault(l.PassTimeout, DefaultPassTimeout)
	})
}

// orDefault is d, or def when d is not positive.
func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Reload hands the loop a new config, reconciled at once. The caller
// validates it first: the loop takes it as it is. Safe to call at any time.
func (l *Loop) Reload(cfg *Config) { l.Update(cfg, JobReload) }

// Update is Reload for a rule source that feeds the loop (Docker
// containers): cfg is reconciled at once, the pass reported with reason
// why (JobSource). Updates that come faster than passes are merged: the
// last one is taken. Safe to call at any time.
func (l *Loop) Update(cfg *Config, why Job) {
	l.init()
	l.mu.Lock()
	l.pending, l.why = cfg, why
	l.mu.Unlock()
	select {
	case l.reloaded <- struct{}{}:
	default:
	}
}

// Run reconciles until ctx ends, then (with CleanupOnExit) deletes the
// owned mappings and returns nil. Gateway failures never end it.
func (l *Loop) Run(ctx context.Context) error {
	l.init()
	job := JobStart
	for {
		if ctx.Err() != nil {
			return l.exit(ctx)
		}
		failed := l.run(ctx, job)
		if ctx.Err() != nil {
			return l.exit(ctx)
		}
		wait, next := l.next(failed, job)
		select {
		case <-ctx.Done():
			return l.exit(ctx)
		case <-l.reloaded:
			l.mu.Lock()
			l.Config, l.pending, job = l.pending, nil, l.why
			l.mu.Unlock()
		case <-l.After(wait):
			job = next
		}
	}
}

// run does one job: a check, then a reconcile when the check asks for one.
// It reports whether the gateway failed; changes that failed on a gateway
// that answered are scheduled again (redo) instead.
func (l *Loop) run(ctx context.Context, job Job) (failed bool) {
	var err error
	if job == JobCheck {
		if job, err = l.check(ctx); err != nil || job == JobCheck {
			return l.settle(ctx, err)
		}
	}
	err = l.reconcile(ctx, job)
	l.redo = time.Time{}
	if err == errRetry {
		l.redos++
		l.redo, l.redoJob = l.Now().Add(jitter(backoffMin<<min(l.redos-1, 6))), job
		err = nil
	} else if err == nil {
		l.redos = 0
	}
	return l.settle(ctx, err)
}

// errRetry is a pass that reached the gateway but left a change failed
// that may work on a second try: the pass runs again with back-off, while
// the checks go on; the pass reports the failure itself, it is not an
// unreachable gateway.
var errRetry = errors.New("some changes failed")

// settle counts a failure, or resets the back-off after a success.
func (l *Loop) settle(ctx context.Context, err error) bool {
	if err == nil {
		l.failures = 0
		return false
	}
	if ctx.Err() == nil {
		l.failures++
		l.retry = l.backoff()
		l.Observer.GatewayUnreachable(err, l.retry)
	}
	return true
}

// backoff is the wait after the current run of failures: 1 s doubling to
// unreachableMax, ±20 % so that many daemons behind one router do not
// retry in step.
func (l *Loop) backoff() time.Duration {
	return jitter(min(backoffMin<<min(l.failures-1, 6), unreachableMax))
}

// jitter caps d at backoffMax and spreads it by ±20 %.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(min(d, backoffMax)) * (0.8 + 0.4*rand.Float64()))
}

// next is how long to wait, and the job to do then: the same job again
// after a gateway failure; else the earliest of the check, a renewal, the
// interval and the retry of failed changes.
func (l *Loop) next(failed bool, job Job) (time.Duration, Job) {
	if failed {
		return l.retry, job
	}
	now := l.Now()
	at, next := now.Add(l.Check), JobCheck
	if full := l.lastFull.Add(l.Interval); full.Before(at) {
		at, next = full, JobInterval
	}
	if renew, ok := l.renewAt(); ok && renew.Before(at) {
		at, next = maxTime(renew, now.Add(time.Second)), JobRenew
	}
	if !l.redo.IsZero() && l.redo.Before(at) {
		at, next = l.redo, l.redoJob
	}
	return max(at.Sub(now), 0), next
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// renewAt is the earliest half-lease among the held mappings.
func (l *Loop) renewAt() (time.Time, bool) {
	var first time.Time
	for _, h := range l.held {
		if at, ok := h.renewAt(); ok && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first, !first.IsZero()
}

func (h held) renewAt() (time.Time, bool) {
	if h.expires.IsZero() || h.lifetime <= 0 {
		return time.Time{}, false
	}
	return h.expires.Add(-h.lifetime / 2), true
}

// connect borrows a gateway for one pass under PassTimeout.
func (l *Loop) connect(ctx context.Context) (*Gateway, context.Context, context.CancelFunc, error) {
	ctx, cancel := context.WithTimeout(ctx, l.PassTimeout)
	g, err := l.Connect(ctx)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return g, ctx, cancel, nil
}

// externalEvery is how often a check through Finder asks the WAN address
// instead of a mapping: every tenth check, half a minute with DefaultCheck.
const externalEvery = 10

// check asks the gateway whether what the loop holds is still there, and
// returns the job the answer calls for: JobCheck when all is well.
func (l *Loop) check(ctx context.Context) (Job, error) {
	g, ctx, cancel, err := l.connect(ctx)
	if err != nil {
		return JobCheck, err
	}
	defer cancel()
	job, err := l.checkOn(ctx, g)
	g.Done(err)
	return job, err
}

// checkOn is one check on g: a single request through Finder where the
// backend has it, else a listing (checkAll). A backend that lists from
// its records is always listed: the listing reads its epoch, the one sign
// of a restart. A Find that fails falls back to the listing, which tells
// an unreachable gateway from one that only cannot look a mapping up.
func (l *Loop) checkOn(ctx context.Context, g *Gateway) (Job, error) {
	props := g.Backend.Properties()
	f, ok := As[Finder](g.Backend)
	if !ok || props.ListsFromState {
		return l.checkAll(ctx, g, props)
	}
	job, err := l.checkOne(ctx, g, f)
	if err == nil || ctx.Err() != nil {
		return job, err
	}
	job, lerr := l.checkAll(ctx, g, props)
	if lerr == nil && !l.fellBack {
		l.fellBack = true // said once: a router may fail every lookup
		l.logf("the one-request check failed (%v): listing the gateway instead, at every check that fails so", err)
	}
	return job, lerr
}

// checkOne asks f about one held mapping, each in turn, or every
// externalEvery-th check, and whenever nothing is held, for the WAN
// address: one request, so a check costs the same whatever the gateway
// holds. A mapping gone (a router reboot takes them all) is found at the
// next check that asks about any held one.
func (l *Loop) checkOne(ctx context.Context, g *Gateway, f Finder) (Job, error) {
	l.checks++
	if len(l.held) == 0 || l.checks%externalEvery == 0 {
		return l.checkExternal(ctx, g.Backend)
	}
	keys := slices.SortedFunc(maps.Keys(l.held), Key.Compare)
	k := keys[l.turn%len(keys)]
	l.turn++
	o, found, err := f.Find(ctx, k)
	if err != nil {
		return JobCheck, err
	}
	if found && l.kept(l.held[k], normalise(o), l.Config.Ownership(g.Hosts(), g.Backend.Properties())) {
		return JobCheck, nil
	}
	l.logf("the gateway no longer holds %s: reconciling", k)
	return JobMissing, nil
}

// checkAll lists the gateway and compares every held mapping.
func (l *Loop) checkAll(ctx context.Context, g *Gateway, props Properties) (Job, error) {
	observed, err := g.Backend.List(ctx)
	if err != nil {
		return JobCheck, err
	}
	if missing := l.missing(observed, l.Config.Ownership(g.Hosts(), props)); len(missing) > 0 {
		l.logf("the gateway no longer holds %s: reconciling", strings.Join(missing, ", "))
		if len(missing) == len(l.held) && props.ListsFromState {
			return JobRestarted, nil // only an epoch reset drops every record at once
		}
		return JobMissing, nil
	}
	if l.externalChanged(ctx, g.Backend) {
		return JobExternal, nil
	}
	return JobCheck, nil
}

// missing lists the held mappings the gateway no longer has as made.
func (l *Loop) missing(observed []Mapping, own DiffOptions) []string {
	seen := make(map[Key]Mapping, len(observed))
	for _, o := range observed {
		o = normalise(o)
		seen[o.Key] = o
	}
	var out []string
	for k, h := range l.held {
		if o, ok := seen[k]; !ok || !l.kept(h, o, own) {
			out = append(out, k.String())
		}
	}
	slices.Sort(out)
	return out
}

// kept reports whether o, the normalised mapping the gateway has on h's
// key, is still h as the loop made it, and still the config's own.
func (l *Loop) kept(h held, o Mapping, own DiffOptions) bool { return own.Owns(o) && same(h.m, o) }

// checkExternal is the check of the WAN address alone. An error is the
// check's: the caller lists instead, which proves whether the gateway
// answers (PCP, for one, knows the address only once a mapping exists).
func (l *Loop) checkExternal(ctx context.Context, b Backend) (Job, error) {
	a, err := b.ExternalAddr(ctx)
	if err != nil {
		return JobCheck, err
	}
	if l.noteExternal(a) {
		return JobExternal, nil
	}
	return JobCheck, nil
}

// externalChanged notes the WAN address and reports a change. An error is
// no change: List already proved the gateway answers, and PCP, for one,
// knows the address only once a mapping exists.
func (l *Loop) externalChanged(ctx context.Context, b Backend) bool {
	a, err := b.ExternalAddr(ctx)
	return err == nil && l.noteExternal(a)
}

// noteExternal notes the WAN address a and reports whether it differs
// from the one noted before.
func (l *Loop) noteExternal(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	before := l.external
	l.external = a
	if before.IsValid() && before != a {
		l.logf("the gateway's external address changed from %v to %v: reconciling", before, a)
		return true
	}
	return false
}

// reconcile makes the gateway match l.Config and reports the pass.
func (l *Loop) reconcile(ctx context.Context, job Job) error {
	l.lastFull = l.Now()
	return l.pass(ctx, job, ModeApply)
}

// pass reconciles the gateway with l.Config in mode (ModeApply, or
// ModeDown for the cleanup on exit) and reports it.
func (l *Loop) pass(ctx context.Context, job Job, mode Mode) error {
	start := l.Now()
	rep := ReconcileReport{Start: start, Reason: job}
	defer func() {
		rep.Duration = l.Now().Sub(start)
		l.Observer.Reconciled(rep)
	}()
	g, ctx, cancel, err := l.connect(ctx)
	if err != nil {
		rep.Err = err
		return err
	}
	defer cancel()
	rep.Backend = g.Backend.Properties().Name
	r, err := Reconcile(ctx, g, l.Config, ReconcileOptions{Mode: mode, Prune: l.Prune, Due: l.dueAt(start)})
	if err != nil {
		rep.Err = err
		g.Done(err)
		return err
	}
	defer g.Done(nil)
	res := *r.Result
	l.logOutcomes(res)
	l.hold(res, start)
	rep.Made, rep.Failed = res.Made(), res.Failed()
	if mode != ModeDown {
		rep.Rules = ruleStates(l.Config, res, start)
	}
	if retryable(res) {
		return errRetry
	}
	return nil
}

// retryable reports whether a change failed for a reason a second try may
// cure (a timeout, a gateway restarting mid-pass). A conflict or a refusal
// stands until the config or the router changes: those wait for the
// interval, so a refused rule is not hammered.
func retryable(res Result) bool {
	return slices.ContainsFunc(res.Outcomes, func(o Outcome) bool {
		return o.Err != nil && !errors.Is(o.Err, ErrConflict) && !errors.Is(o.Err, ErrNotAuthorized)
	})
}

// dueAt reports, for Reconcile, the held mappings at half their lease at
// now (Diff renews only once less than half is left, which would be the
// next check after the renewal time, or the interval).
func (l *Loop) dueAt(now time.Time) func(Key) bool {
	return func(k Key) bool {
		at, ok := l.held[k].renewAt()
		return ok && !at.After(now.Add(time.Second))
	}
}

// hold records what the pass left on the gateway: each mapping granted,
// and each found in place, with when it expires and the lease it was
// granted (a found one keeps the lease known from before, else the one
// requested).
func (l *Loop) hold(res Result, now time.Time) {
	next := make(map[Key]held)
	for _, o := range res.Outcomes {
		switch c := o.Change; {
		case o.Err != nil || c.Action == Delete || c.Action == Conflict || c.Action == Held:
		case o.Granted != nil:
			next[o.Granted.Key] = held{m: *o.Granted, expires: expiry(now, o.Granted.Lease), lifetime: o.Granted.Lease}
		case c.Before != nil:
			h := held{m: *c.Before, expires: expiry(now, c.Before.Lease), lifetime: c.After.Lease}
			if prev, ok := l.held[c.Key]; ok {
				h.lifetime = prev.lifetime
			} else if h.lifetime == 0 {
				h.lifetime = permanentCap(c.Key)
			}
			next[c.Key] = h
		}
	}
	l.held = next
}

func expiry(now time.Time, lease time.Duration) time.Time {
	if lease <= 0 {
		return time.Time{}
	}
	return now.Add(lease)
}

// ruleStates is each rule of cfg after a pass: RuleConflict when another
// mapping holds one of its keys, else RuleFailed when a change of it
// failed, else RuleOK, with the earliest expiry of its mappings.
func ruleStates(cfg *Config, res Result, now time.Time) []RuleState {
	out := make([]RuleState, 0, len(cfg.Rules))
	for _, r := range cfg.Rules {
		st := RuleState{Rule: r.Name, State: RuleOK, Families: r.families()}
		var errs []string
		for _, o := range res.Outcomes {
			if o.Change.Rule != r.Name || o.Change.Action == Delete {
				continue
			}
			st.Expires = earliest(st.Expires, leaseOf(o), now)
			if o.Err == nil {
				continue
			}
			errs = append(errs, o.Err.Error())
			if !slices.Contains(st.Down, o.Change.Key.Family) {
				st.Down = append(st.Down, o.Change.Key.Family)
			}
			if errors.Is(o.Err, ErrConflict) {
				st.State = RuleConflict
			} else if st.State == RuleOK {
				st.State = RuleFailed
			}
		}
		st.Error = strings.Join(errs, "; ")
		out = append(out, st)
	}
	return out
}

// leaseOf is the lease an outcome left on the gateway: 0 for permanent or
// none.
func leaseOf(o Outcome) time.Duration {
	switch {
	case o.Err != nil:
		return 0
	case o.Granted != nil:
		return o.Granted.Lease
	case o.Change.Before != nil:
		return o.Change.Before.Lease
	}
	return 0
}

func earliest(t time.Time, lease time.Duration, now time.Time) time.Time {
	if lease <= 0 {
		return t
	}
	if e := now.Add(lease); t.IsZero() || e.Before(t) {
		return e
	}
	return t
}

func (l *Loop) logOutcomes(res Result) {
	for _, o := range res.Outcomes {
		c := o.Change
		switch {
		case c.Action == Noop:
		case o.Err != nil:
			l.logf("%s %s %s failed: %v", c.Action, c.Rule, c.Key, o.Err)
		case o.Note != "":
			l.logf("%s %s %s (%s): %s", c.Action.Past(), c.Rule, c.Key, c.Reason, o.Note)
		default:
			l.logf("%s %s %s (%s)", c.Action.Past(), c.Rule, c.Key, c.Reason)
		}
	}
}

func (l *Loop) logf(format string, a ...any) {
	if l.Logf != nil {
		l.Logf(format, a...)
	}
}

// exit ends Run: with CleanupOnExit, one last pass deletes every mapping
// the config owns, under its own PassTimeout since ctx is already done.
func (l *Loop) exit(ctx context.Context) error {
	if !l.CleanupOnExit {
		return nil
	}
	if err := l.pass(context.WithoutCancel(ctx), JobExit, ModeDown); err != nil {
		l.logf("removing the mappings on exit failed: %v", err)
	}
	return nil
}
