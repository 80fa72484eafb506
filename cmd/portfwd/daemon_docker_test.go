package main

import (
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// recordingObserver keeps the rules of the last report.
type recordingObserver struct{ rules []string }

func (o *recordingObserver) Reconciled(r forward.ReconcileReport) {
	o.rules = nil
	for _, rs := range r.Rules {
		o.rules = append(o.rules, rs.Rule)
	}
}

func (o *recordingObserver) GatewayUnreachable(error, time.Duration) {}

// TestRuleUnion: the metrics see the file's rules and the containers'
// together, whichever loop reported last, and a failed pass that learnt
// nothing keeps its loop's last rules.
func TestRuleUnion(t *testing.T) {
	rec := &recordingObserver{}
	u := &ruleUnion{next: rec}
	file, containers := u.part(0), u.part(1)
	file.Reconciled(forward.ReconcileReport{Rules: []forward.RuleState{{Rule: "web"}}})
	containers.Reconciled(forward.ReconcileReport{Rules: []forward.RuleState{{Rule: "mc"}, {Rule: "game"}}})
	if got := strings.Join(rec.rules, ","); got != "web,mc,game" {
		t.Errorf("rules %s, want web,mc,game", got)
	}
	file.Reconciled(forward.ReconcileReport{Err: errGatewayGone})
	if got := strings.Join(rec.rules, ","); got != "web,mc,game" {
		t.Errorf("after a failed pass: rules %s, want them kept", got)
	}
	containers.Reconciled(forward.ReconcileReport{})
	if got := strings.Join(rec.rules, ","); got != "web" {
		t.Errorf("after the containers went: rules %s, want web", got)
	}
}

var errGatewayGone = forward.ErrNoGateway
