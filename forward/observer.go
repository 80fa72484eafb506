package forward

import "time"

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
	Reason   string // why it ran: "start", "interval", "renew", "gateway restarted", "mapping missing", "external address changed", "config reloaded", "exit"
	Backend  string // the gateway protocol in use: "upnp", "pcp", "natpmp"
	Made     int    // changes that took effect
	Failed   int    // changes that did not
	Err      error  // a failure of the whole pass (gateway unreachable, listing failed)
	Rules    []RuleState
}

// RuleState is one rule after a reconcile.
type RuleState struct {
	Rule    string
	State   string    // "ok", "failed", "conflict"
	Expires time.Time // when the earliest of its mappings' leases runs out; zero for permanent
	Error   string    // why, when not ok
}

// NopObserver observes nothing.
type NopObserver struct{}

// Reconciled implements Observer.
func (NopObserver) Reconciled(ReconcileReport) {}

// GatewayUnreachable implements Observer.
func (NopObserver) GatewayUnreachable(error, time.Duration) {}
