package forward_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
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

func TestLogObserverJSON(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	o := forward.LogObserver{Log: slog.New(slog.NewJSONHandler(&buf, nil))}
	o.Reconciled(failedPass)
	o.GatewayUnreachable(errors.New("no gateway answered SSDP"), 30*time.Second)
	lines := jsonLines(t, &buf)
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %d:\n%s", len(lines), buf.String())
	}
	rec := lines[0]
	for k, want := range map[string]any{"level": "WARN", "reason": "interval", "backend": "upnp",
		"made": 2.0, "failed": 1.0, "duration": "1.235s"} {
		if rec[k] != want {
			t.Errorf("reconciled %s = %v (%T), want %v", k, rec[k], rec[k], want)
		}
	}
	if msg, _ := rec["msg"].(string); !strings.HasPrefix(msg, "reconciled (interval) over upnp: 2 change(s) made, 1 failed") {
		t.Errorf("msg = %q", msg)
	}
	errs, _ := rec["errors"].(map[string]any)
	if errs["ssh"] != "tcp/22 is held by 192.168.1.7 (sshd-nas)" || len(errs) != 1 {
		t.Errorf("errors = %v, want only ssh's", rec["errors"])
	}
	un := lines[1]
	if !strings.HasPrefix(un["msg"].(string), "gateway unreachable") || un["err"] != "no gateway answered SSDP" || un["retry_in"] != "30s" {
		t.Errorf("unreachable line = %v", un)
	}
}

func TestLogObserverLevels(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		r    forward.ReconcileReport
		want string
	}{
		{forward.ReconcileReport{Reason: forward.JobStart, Rules: []forward.RuleState{{Rule: "a", State: forward.RuleOK}}}, "INFO"},
		{failedPass, "WARN"},
		{forward.ReconcileReport{Reason: forward.JobInterval, Err: errors.New("listing mappings: timeout")}, "WARN"},
	} {
		var buf bytes.Buffer
		forward.LogObserver{Log: slog.New(slog.NewJSONHandler(&buf, nil))}.Reconciled(tc.r)
		line := jsonLines(t, &buf)[0]
		if line["level"] != tc.want {
			t.Errorf("%+v: level %v, want %s", tc.r, line["level"], tc.want)
		}
		if tc.r.Err != nil && line["err"] != tc.r.Err.Error() {
			t.Errorf("err = %v, want %v", line["err"], tc.r.Err)
		}
	}
	var buf bytes.Buffer
	forward.LogObserver{Log: slog.New(slog.NewTextHandler(&buf, nil))}.Reconciled(forward.ReconcileReport{Reason: forward.JobInterval})
	if buf.Len() != 0 {
		t.Errorf("a quiet interval pass logged %q", buf.String())
	}
}

func TestLogObserverText(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	forward.LogObserver{Log: slog.New(slog.NewTextHandler(&buf, nil))}.Reconciled(failedPass)
	got := buf.String()
	for _, want := range []string{"level=WARN", `msg="reconciled (interval) over upnp`, "reason=interval", "backend=upnp", "made=2", "failed=1",
		"duration=1.235s", `errors.ssh="tcp/22 is held by 192.168.1.7 (sshd-nas)"`} {
		if !strings.Contains(got, want) {
			t.Errorf("text line lacks %s:\n%s", want, got)
		}
	}
	if strings.Count(got, "\n") != 1 {
		t.Errorf("want one line per reconcile:\n%s", got)
	}
}

// counter counts what it observes.
type counter struct{ reconciled, unreachable int }

func (r *counter) Reconciled(forward.ReconcileReport)      { r.reconciled++ }
func (r *counter) GatewayUnreachable(error, time.Duration) { r.unreachable++ }

func TestObservers(t *testing.T) {
	t.Parallel()
	a, b := &counter{}, &counter{}
	o := forward.Observers(a, nil, b)
	o.Reconciled(forward.ReconcileReport{})
	o.GatewayUnreachable(errors.New("x"), time.Second)
	for _, r := range []*counter{a, b} {
		if r.reconciled != 1 || r.unreachable != 1 {
			t.Errorf("observer saw %+v, want one of each", *r)
		}
	}
	if got := forward.Observers(a); got != forward.Observer(a) {
		t.Errorf("one observer should come back as itself, got %T", got)
	}
	forward.Observers().Reconciled(forward.ReconcileReport{}) // no observers: nothing to panic on
}

// TestLogObserverOneLinePerPass: an error quoting a router's text (a line
// break, a terminal escape) stays on its line, escaped, in both formats.
func TestLogObserverOneLinePerPass(t *testing.T) {
	t.Parallel()
	rep := failedPass
	rep.Rules = []forward.RuleState{{Rule: "ssh", State: forward.RuleConflict, Error: "held by \"x\ntcp\t22\x1b[2J\""}}
	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		forward.LogObserver{Log: slog.New(h(&buf))}.Reconciled(rep)
		if got := buf.String(); strings.Count(got, "\n") != 1 || strings.ContainsAny(got, "\t\x1b") {
			t.Errorf("log line not escaped: %q", got)
		}
	}
}
