package forward

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Observer receives what a long-running reconcile loop does, for logs and
// metrics. Implementations must be safe for concurrent use and must not
// block: the loop calls them inline.
type Observer interface {
	// Reconciled is called after every reconcile, successful or not.
	Reconciled(r ReconcileReport)
	// GatewayUnreachable is called when the gateway could not be reached;
	// the loop tries again after retryIn.
	GatewayUnreachable(err error, retryIn time.Duration)
}

// ReconcileReport is one pass of the reconcile loop.
type ReconcileReport struct {
	Start    time.Time
	Duration time.Duration
	Reason   Job    // why it ran
	Backend  string // the gateway protocol in use: "upnp", "pcp", "natpmp"
	Made     int    // changes that took effect
	Failed   int    // changes that did not
	Err      error  // a failure of the whole pass (gateway unreachable, listing failed)
	Rules    []RuleState
}

// RuleState is one rule after a reconcile.
type RuleState struct {
	Rule    string
	State   RuleStatus
	Expires time.Time // when the earliest of its mappings' leases runs out; zero for permanent
	Error   string    // why, when not ok
	// Families are the address families the rule opens; Down those of
	// them with a mapping that failed or is held by someone else (a dual
	// rule whose forward works and whose pinhole was refused is down on
	// IPv6 alone).
	Families, Down []Family
}

// RuleStatus is how a rule stands after a reconcile.
type RuleStatus int

// The states a rule can be in, from good to bad.
const (
	RuleOK       RuleStatus = iota // every mapping of the rule is on the gateway as asked
	RuleFailed                     // a change of the rule failed (a refusal, a timeout)
	RuleConflict                   // another mapping holds one of the rule's keys
)

var ruleStatusNames = [...]string{"ok", "failed", "conflict"}

// RuleStatuses lists every RuleStatus, in order.
func RuleStatuses() []RuleStatus { return []RuleStatus{RuleOK, RuleFailed, RuleConflict} }

// String is "ok", "failed" or "conflict".
func (s RuleStatus) String() string {
	if s < 0 || int(s) >= len(ruleStatusNames) {
		return "unknown"
	}
	return ruleStatusNames[s]
}

// NopObserver observes nothing.
type NopObserver struct{}

// Reconciled implements Observer.
func (NopObserver) Reconciled(ReconcileReport) {}

// GatewayUnreachable implements Observer.
func (NopObserver) GatewayUnreachable(error, time.Duration) {}

// Observers fans every event out to each observer, in order; nil ones are
// skipped.
func Observers(obs ...Observer) Observer {
	var m multiObserver
	for _, o := range obs {
		if o != nil {
			m = append(m, o)
		}
	}
	switch len(m) {
	case 0:
		return NopObserver{}
	case 1:
		return m[0]
	}
	return m
}

type multiObserver []Observer

// Reconciled implements Observer.
func (m multiObserver) Reconciled(r ReconcileReport) {
	for _, o := range m {
		o.Reconciled(r)
	}
}

// GatewayUnreachable implements Observer.
func (m multiObserver) GatewayUnreachable(err error, retryIn time.Duration) {
	for _, o := range m {
		o.GatewayUnreachable(err, retryIn)
	}
}

// LogObserver logs each pass of a Loop on one line: INFO when it went
// well, WARN with every rule that is not ok, or when the pass failed. A
// quiet interval pass that changed nothing is not worth a line. Besides
// the sentence for people, each line carries the pass as attributes
// (reason, backend, made, failed, duration, and errors by rule) for log
// shippers.
type LogObserver struct{ Log *slog.Logger }

var _ Observer = LogObserver{}

// Reconciled implements Observer.
func (o LogObserver) Reconciled(r ReconcileReport) {
	attrs := []any{slog.String("reason", r.Reason.String()), slog.String("backend", r.Backend),
		slog.Int("made", r.Made), slog.Int("failed", r.Failed), slog.String("duration", r.Duration.Round(time.Millisecond).String())}
	if r.Err != nil {
		o.Log.Warn(fmt.Sprintf("reconcile (%s) failed: %v", r.Reason, r.Err), append(attrs, slog.String("err", r.Err.Error()))...)
		return
	}
	var bad []string
	var errs []any
	for _, rs := range r.Rules {
		if rs.State != RuleOK {
			bad = append(bad, fmt.Sprintf("%s %s: %s", rs.Rule, rs.State, rs.Error))
			errs = append(errs, slog.String(rs.Rule, cmp.Or(rs.Error, rs.State.String())))
		}
	}
	msg := fmt.Sprintf("reconciled (%s) over %s: %d change(s) made, %d failed, in %v", r.Reason, r.Backend, r.Made, r.Failed, r.Duration.Round(time.Millisecond))
	switch {
	case len(bad) > 0:
		o.Log.Warn(msg+"; "+strings.Join(bad, "; "), append(attrs, slog.Group("errors", errs...))...)
	case r.Made > 0 || r.Reason != JobInterval:
		o.Log.Info(msg, attrs...)
	}
}

// GatewayUnreachable implements Observer.
func (o LogObserver) GatewayUnreachable(err error, retryIn time.Duration) {
	retry := retryIn.Round(100 * time.Millisecond)
	o.Log.Warn(fmt.Sprintf("gateway unreachable, retrying in %v: %s", retry, OneLine(err)),
		slog.String("err", err.Error()), slog.String("retry_in", retry.String()))
}

// OneLine is err on one line, for logs: a config error's problems (each
// with file, line and key) joined by "; ", any other error's lines too.
func OneLine(err error) string {
	var ce *ConfigError
	if errors.As(err, &ce) {
		lines := make([]string, len(ce.Problems))
		for i, p := range ce.Problems {
			lines[i] = p.String()
		}
		return strings.Join(lines, "; ")
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
