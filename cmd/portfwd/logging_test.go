package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

var failedPass = forward.ReconcileReport{
	Start: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Duration: 1234567 * time.Microsecond,
	Reason: forward.JobInterval, Backend: "upnp", Made: 2, Failed: 1,
	Rules: []forward.RuleState{
		{Rule: "minecraft", State: forward.RuleOK},
		{Rule: "ssh", State: forward.RuleConflict, Error: "tcp/22 is held by 192.168.1.7 (sshd-nas)"},
	},
}

func jsonLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

func TestLoggingJSON(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log, err := newLogger(&buf, "json")
	if err != nil {
		t.Fatal(err)
	}
	o := logObserver{log}
	o.Reconciled(failedPass)
	o.GatewayUnreachable(errors.New("no gateway answered SSDP"), 30*time.Second)
	lines := jsonLines(t, &buf)
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %d:\n%s", len(lines), buf.String())
	}
	rec := lines[0]
	for k, want := range map[string]any{"msg": "reconciled", "level": "WARN", "reason": "interval", "backend": "upnp",
		"made": 2.0, "failed": 1.0, "duration": "1.235s"} {
		if rec[k] != want {
			t.Errorf("reconciled %s = %v (%T), want %v", k, rec[k], rec[k], want)
		}
	}
	errs, _ := rec["errors"].(map[string]any)
	if errs["ssh"] != "tcp/22 is held by 192.168.1.7 (sshd-nas)" || len(errs) != 1 {
		t.Errorf("errors = %v, want only ssh's", rec["errors"])
	}
	un := lines[1]
	if un["msg"] != "gateway unreachable" || un["err"] != "no gateway answered SSDP" || un["retry_in"] != "30s" {
		t.Errorf("unreachable line = %v", un)
	}
}

func TestLoggingLevels(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		r    forward.ReconcileReport
		want string
	}{
		{forward.ReconcileReport{Reason: forward.JobStart, Rules: []forward.RuleState{{Rule: "a", State: forward.RuleOK}}}, "INFO"},
		{failedPass, "WARN"},
		{forward.ReconcileReport{Reason: forward.JobInterval, Err: errors.New("listing mappings: timeout")}, "ERROR"},
	} {
		var buf bytes.Buffer
		log, _ := newLogger(&buf, "json")
		logObserver{log}.Reconciled(tc.r)
		line := jsonLines(t, &buf)[0]
		if line["level"] != tc.want {
			t.Errorf("%+v: level %v, want %s", tc.r, line["level"], tc.want)
		}
		if tc.r.Err != nil && line["err"] != tc.r.Err.Error() {
			t.Errorf("err = %v, want %v", line["err"], tc.r.Err)
		}
	}
}

func TestLoggingText(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log, err := newLogger(&buf, "text")
	if err != nil {
		t.Fatal(err)
	}
	logObserver{log}.Reconciled(failedPass)
	got := buf.String()
	for _, want := range []string{"level=WARN", "msg=reconciled", "reason=interval", "backend=upnp", "made=2", "failed=1",
		"duration=1.235s", `errors.ssh="tcp/22 is held by 192.168.1.7 (sshd-nas)"`} {
		if !strings.Contains(got, want) {
			t.Errorf("text line lacks %s:\n%s", want, got)
		}
	}
	if strings.Count(got, "\n") != 1 {
		t.Errorf("want one line per reconcile:\n%s", got)
	}
}

func TestLoggingFormatUnknown(t *testing.T) {
	t.Parallel()
	if _, err := newLogger(&bytes.Buffer{}, "logfmt"); err == nil || !strings.Contains(err.Error(), "use text or json") {
		t.Errorf("err = %v", err)
	}
}

// recorder counts what it observes.
type recorder struct{ reconciled, unreachable int }

func (r *recorder) Reconciled(forward.ReconcileReport)      { r.reconciled++ }
func (r *recorder) GatewayUnreachable(error, time.Duration) { r.unreachable++ }

func TestLoggingMultiObserver(t *testing.T) {
	t.Parallel()
	a, b := &recorder{}, &recorder{}
	o := multiObserver(a, nil, b)
	o.Reconciled(forward.ReconcileReport{})
	o.GatewayUnreachable(errors.New("x"), time.Second)
	for _, r := range []*recorder{a, b} {
		if r.reconciled != 1 || r.unreachable != 1 {
			t.Errorf("observer saw %+v, want one of each", *r)
		}
	}
	if got := multiObserver(a); got != forward.Observer(a) {
		t.Errorf("one observer should come back as itself, got %T", got)
	}
	multiObserver().Reconciled(forward.ReconcileReport{}) // no observers: nothing to panic on
}
