package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/probe"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// get fetches path from h and returns the status and body.
func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func scrape(t *testing.T, m *metrics) string {
	t.Helper()
	code, body := get(t, m.Handler(), "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	return body
}

// expose asserts the exposition has each series line exactly, and none of
// the absent series names (with their labels).
func expose(t *testing.T, body string, has []string, absent ...string) {
	t.Helper()
	lines := map[string]bool{}
	for _, l := range strings.Split(body, "\n") {
		lines[l] = true
	}
	for _, want := range has {
		if !lines[want] {
			t.Errorf("exposition lacks %s", want)
		}
	}
	for _, not := range absent {
		if strings.Contains(body, not) {
			t.Errorf("exposition still has %s", not)
		}
	}
	if t.Failed() {
		t.Logf("exposition:\n%s", body)
	}
}

func TestMetricsReconciled(t *testing.T) {
	t.Parallel()
	m := newMetrics(time.Minute)
	m.Reconciled(forward.ReconcileReport{Start: t0, Duration: 250 * time.Millisecond, Reason: forward.JobStart, Backend: "upnp",
		Made: 3, Failed: 1, Rules: []forward.RuleState{
			{Rule: "minecraft", State: forward.RuleOK, Expires: t0.Add(time.Hour)},
			{Rule: "ssh", State: forward.RuleConflict, Error: "held by 192.168.1.7"},
			{Rule: "valheim", State: forward.RuleFailed, Error: "refused"},
		}})
	expose(t, scrape(t, m), []string{
		`portfwd_rule_up{rule="minecraft"} 1`,
		`portfwd_rule_up{rule="ssh"} 0`,
		`portfwd_rule_up{rule="valheim"} 0`,
		`portfwd_rule_state{rule="minecraft",state="ok"} 1`,
		`portfwd_rule_state{rule="minecraft",state="conflict"} 0`,
		`portfwd_rule_state{rule="ssh",state="conflict"} 1`,
		`portfwd_rule_state{rule="ssh",state="ok"} 0`,
		`portfwd_rule_state{rule="valheim",state="failed"} 1`,
		`portfwd_rule_lease_expiry_timestamp_seconds{rule="minecraft"} 1.735790645e+09`,
		`portfwd_reconciles_total{reason="start",result="ok"} 1`,
		`portfwd_reconcile_changes_total{kind="made"} 3`,
		`portfwd_reconcile_changes_total{kind="failed"} 1`,
		`portfwd_reconcile_duration_seconds_count 1`,
		`portfwd_reconcile_duration_seconds_sum 0.25`,
		`portfwd_reconcile_duration_seconds_bucket{le="0.25"} 1`,
		`portfwd_reconcile_duration_seconds_bucket{le="0.1"} 0`,
		`portfwd_gateway_info{backend="upnp"} 1`,
		`portfwd_gateway_unreachable_total 0`,
		`portfwd_last_reconcile_timestamp_seconds 1.73578704525e+09`,
		`portfwd_last_successful_reconcile_timestamp_seconds 1.73578704525e+09`,
		"# HELP portfwd_rule_up Whether the rule's forwards are on the gateway as the config asks: 1 ok, 0 failed or held by someone else (see portfwd_rule_state). Alert on == 0.",
		"# TYPE portfwd_reconcile_duration_seconds histogram",
	}, `portfwd_rule_lease_expiry_timestamp_seconds{rule="ssh"}`)
}

func TestMetricsRulesDisappear(t *testing.T) {
	t.Parallel()
	m := newMetrics(time.Minute)
	m.Reconciled(forward.ReconcileReport{Start: t0, Reason: forward.JobStart, Backend: "upnp", Rules: []forward.RuleState{
		{Rule: "minecraft", State: forward.RuleOK, Expires: t0.Add(time.Hour)}, {Rule: "old", State: forward.RuleOK, Expires: t0.Add(time.Hour)}}})
	m.Reconciled(forward.ReconcileReport{Start: t0.Add(time.Minute), Reason: forward.JobReload, Backend: "natpmp",
		Rules: []forward.RuleState{{Rule: "minecraft", State: forward.RuleOK}}})
	expose(t, scrape(t, m), []string{
		`portfwd_rule_up{rule="minecraft"} 1`,
		`portfwd_gateway_info{backend="natpmp"} 1`,
		`portfwd_reconciles_total{reason="start",result="ok"} 1`,
		`portfwd_reconciles_total{reason="config reloaded",result="ok"} 1`,
	}, `rule="old"`, `backend="upnp"`, `portfwd_rule_lease_expiry_timestamp_seconds{rule="minecraft"}`)
}

func TestMetricsFailedPass(t *testing.T) {
	t.Parallel()
	m := newMetrics(time.Minute)
	m.Reconciled(forward.ReconcileReport{Start: t0, Reason: forward.JobStart, Backend: "upnp",
		Rules: []forward.RuleState{{Rule: "minecraft", State: forward.RuleOK}}})
	m.GatewayUnreachable(errors.New("no answer"), 30*time.Second)
	m.Reconciled(forward.ReconcileReport{Start: t0.Add(time.Minute), Reason: forward.JobInterval, Err: errors.New("listing mappings: timeout")})
	expose(t, scrape(t, m), []string{
		`portfwd_reconciles_total{reason="interval",result="error"} 1`,
		`portfwd_gateway_unreachable_total 1`,
		// A pass that learnt nothing keeps the last known states.
		`portfwd_rule_up{rule="minecraft"} 1`,
		`portfwd_gateway_info{backend="upnp"} 1`,
		`portfwd_last_reconcile_timestamp_seconds 1.735787105e+09`,
		`portfwd_last_successful_reconcile_timestamp_seconds 1.735787045e+09`,
	})
}

func TestMetricsProbed(t *testing.T) {
	t.Parallel()
	m := newMetrics(time.Minute)
	report := func(rule string, v probe.Verdict) probe.Report {
		return probe.Report{Target: probe.Target{Rule: rule}, Verdict: v}
	}
	m.Probed([]probe.Report{report("minecraft", probe.Reachable), report("old", probe.Reachable)})
	m.Probed([]probe.Report{
		report("minecraft", probe.Reachable),
		report("valheim", probe.Reachable), report("valheim", probe.Unreachable), // two ports: the worst counts
		report("ssh", probe.Inconclusive),
	})
	expose(t, scrape(t, m), []string{
		`portfwd_probe_verdict{rule="minecraft",verdict="reachable"} 1`,
		`portfwd_probe_verdict{rule="minecraft",verdict="unreachable"} 0`,
		`portfwd_probe_verdict{rule="minecraft",verdict="inconclusive"} 0`,
		`portfwd_probe_verdict{rule="valheim",verdict="unreachable"} 1`,
		`portfwd_probe_verdict{rule="valheim",verdict="reachable"} 0`,
		`portfwd_probe_verdict{rule="ssh",verdict="inconclusive"} 1`,
	}, `rule="old"`)
}

func TestMetricsHasProcessAndGo(t *testing.T) {
	t.Parallel()
	body := scrape(t, newMetrics(time.Minute))
	for _, want := range []string{"go_goroutines ", "process_resident_memory_bytes ", "promhttp_metric_handler_requests_total"} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
}

func TestMetricsHealthz(t *testing.T) {
	t.Parallel()
	ok := forward.ReconcileReport{Start: t0, Duration: time.Second, Reason: forward.JobStart, Backend: "upnp"}
	bad := forward.ReconcileReport{Start: t0, Reason: forward.JobInterval, Err: errors.New("listing mappings: timeout")}
	for _, tc := range []struct {
		name    string
		feed    func(m *metrics)
		now     time.Time
		code    int
		contain string
	}{
		{"before the first reconcile", func(*metrics) {}, t0, 503, "no reconcile yet"},
		{"fresh", func(m *metrics) { m.Reconciled(ok) }, t0.Add(2 * time.Minute), 200, "ok"},
		{"stale", func(m *metrics) { m.Reconciled(ok) }, t0.Add(4 * time.Minute), 503, "3× the 1m0s interval"},
		{"never succeeded", func(m *metrics) { m.Reconciled(bad) }, t0, 503, "no reconcile has succeeded yet; last error: listing mappings: timeout"},
		{"last failed", func(m *metrics) { m.Reconciled(ok); m.Reconciled(bad) }, t0, 503, "the last reconcile attempt failed; last error: listing mappings"},
		{"gateway gone", func(m *metrics) { m.Reconciled(ok); m.GatewayUnreachable(errors.New("no answer"), time.Second) }, t0, 503, "no answer"},
		{"recovered", func(m *metrics) { m.Reconciled(bad); m.Reconciled(ok) }, t0, 200, "ok"},
	} {
		m := newMetrics(time.Minute)
		m.now = func() time.Time { return tc.now }
		tc.feed(m)
		code, body := get(t, m.Handler(), "/healthz")
		if code != tc.code || !strings.Contains(body, tc.contain) {
			t.Errorf("%s: %d %q, want %d with %q", tc.name, code, body, tc.code, tc.contain)
		}
	}
}

// syncBuffer is a bytes.Buffer another goroutine (a server, a daemon
// process) writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestMetricsServe(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	ln, err := listenMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- serveMetrics(ctx, ln, newMetrics(time.Minute), log) }()

	var addr string
	for deadline := time.Now().Add(5 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var line struct{ Addr string }
		if err := json.Unmarshal([]byte(logs.String()), &line); err == nil {
			addr = line.Addr
		}
	}
	if addr == "" {
		t.Fatalf("no listening address logged: %q", logs.String())
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "portfwd_gateway_unreachable_total 0") {
		t.Errorf("served metrics lack portfwd_gateway_unreachable_total:\n%s", body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serveMetrics did not return after ctx was cancelled")
	}
}

func TestMetricsServeBadAddr(t *testing.T) {
	t.Parallel()
	_, err := listenMetrics("127.0.0.1:http-nope")
	if err == nil || !strings.Contains(err.Error(), "--metrics") {
		t.Errorf("err = %v, want one naming --metrics", err)
	}
}

// TestMetricsRuleFamilies: a dual rule whose pinhole was refused is up on
// ipv4 and down on ipv6; an IPv4 rule has its ipv4 series alone.
func TestMetricsRuleFamilies(t *testing.T) {
	t.Parallel()
	m := newMetrics(time.Minute)
	m.Reconciled(forward.ReconcileReport{Start: t0, Reason: forward.JobStart, Backend: "natpmp", Rules: []forward.RuleState{
		{Rule: "minecraft", State: forward.RuleFailed, Families: []forward.Family{forward.IPv4, forward.IPv6}, Down: []forward.Family{forward.IPv6}},
		{Rule: "ssh", State: forward.RuleOK, Families: []forward.Family{forward.IPv4}},
	}})
	expose(t, scrape(t, m), []string{
		`portfwd_rule_family_up{family="ipv4",rule="minecraft"} 1`,
		`portfwd_rule_family_up{family="ipv6",rule="minecraft"} 0`,
		`portfwd_rule_family_up{family="ipv4",rule="ssh"} 1`,
	}, `portfwd_rule_family_up{family="ipv6",rule="ssh"}`)
}
