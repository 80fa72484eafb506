package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/probe"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// verdicts are the probe verdicts, worst last: a rule probed on several
// ports takes the worst of them.
var verdicts = []probe.Verdict{probe.Reachable, probe.Inconclusive, probe.Unreachable}

// staleAfter is how many reconcile intervals may pass without a successful
// reconcile before /healthz fails.
const staleAfter = 3

// metrics is what the daemon exports to Prometheus. It has its own registry,
// so nothing another package registers globally leaks into /metrics.
type metrics struct {
	reg      *prometheus.Registry
	interval time.Duration
	now      func() time.Time // tests replace it

	ruleUp, ruleFamilyUp, ruleState, leaseExpiry, gatewayInfo, probeVerdict *prometheus.GaugeVec
	reconciles, changes                                                     *prometheus.CounterVec
	duration                                                                prometheus.Histogram
	unreachable                                                             prometheus.Counter
	lastReconcile, lastSuccess                                              prometheus.Gauge

	// mu makes a report's reset-and-set of the vectors it replaces atomic
	// to a scrape, which would otherwise see the rules half gone.
	mu     sync.RWMutex
	lastOK time.Time // end of the last successful reconcile
	ran    bool      // a reconcile has been reported
	err    error     // why the last reconcile, or gateway contact, failed
}

var _ forward.Observer = (*metrics)(nil)

// newMetrics registers portfwd's metrics. interval is the reconcile loop's
// interval: /healthz fails once no reconcile has succeeded for three of them.
func newMetrics(interval time.Duration) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), interval: interval, now: time.Now}
	m.reg.MustRegister(collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.registerRules()
	m.registerReconciles()
	m.registerGateway()
	m.reg.MustRegister(&lockedCollector{mu: &m.mu,
		cs: []prometheus.Collector{m.ruleUp, m.ruleFamilyUp, m.ruleState, m.leaseExpiry, m.probeVerdict, m.gatewayInfo}})
	return m
}

// gaugeVec makes a gauge vector that every report replaces; newMetrics
// registers these together, under m.mu.
func (m *metrics) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "portfwd", Name: name, Help: help}, labels)
}

func (m *metrics) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "portfwd", Name: name, Help: help})
	m.reg.MustRegister(g)
	return g
}

func (m *metrics) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "portfwd", Name: name, Help: help}, labels)
	m.reg.MustRegister(c)
	return c
}

func (m *metrics) registerRules() {
	m.ruleUp = m.gaugeVec("rule_up",
		"Whether the rule's forwards are on the gateway as the config asks: 1 ok, 0 failed or held by someone else (see portfwd_rule_state). Alert on == 0.",
		"rule")
	m.ruleFamilyUp = m.gaugeVec("rule_family_up",
		"Per address family the rule opens (ipv4: the port forward, ipv6: the firewall pinhole), whether its mappings are on the gateway as asked: 1 ok, 0 failed or held by someone else. A dual rule whose pinhole was refused is 1 on ipv4 and 0 on ipv6.",
		"rule", "family")
	m.ruleState = m.gaugeVec("rule_state",
		"The rule's state after the last reconcile: 1 for the current state (ok, failed, conflict), 0 for the others. conflict: another device holds the port; failed: the gateway refused.",
		"rule", "state")
	m.leaseExpiry = m.gaugeVec("rule_lease_expiry_timestamp_seconds",
		"Unix time at which the rule's earliest mapping lease runs out unless portfwd renews it; absent for permanent mappings. portfwd_rule_lease_expiry_timestamp_seconds - time() < 60 means renewals are not getting through.",
		"rule")
	m.probeVerdict = m.gaugeVec("probe_verdict",
		"The last reachability probe of the rule: 1 for the current verdict (reachable, unreachable, inconclusive), 0 for the others. A rule probed on several ports shows its worst verdict.",
		"rule", "verdict")
}

func (m *metrics) registerReconciles() {
	m.duration = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "portfwd", Name: "reconcile_duration_seconds",
		Help:    "How long a reconcile pass took: list the gateway's mappings, then add, renew or delete what differs. Slow passes point at a slow or overloaded router.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}})
	m.reg.MustRegister(m.duration)
	m.reconciles = m.counterVec("reconciles_total",
		"Reconcile passes, by why they ran (start, interval, renew, gateway restarted, mapping missing, config reloaded, signal) and result: error when the pass as a whole failed (gateway unreachable, listing failed). A pass whose single rules failed is ok here; see portfwd_reconcile_changes_total{kind=\"failed\"}.",
		"reason", "result")
	m.changes = m.counterVec("reconcile_changes_total",
		"Changes to the gateway's mappings: made took effect, failed did not. A steadily rising made means something keeps undoing portfwd's mappings (a router that forgets them, another program deleting them).",
		"kind")
	m.changes.WithLabelValues("made")
	m.changes.WithLabelValues("failed")
	m.lastReconcile = m.gauge("last_reconcile_timestamp_seconds",
		"Unix time at which the last reconcile pass ended, successful or not. time() - portfwd_last_reconcile_timestamp_seconds well past the interval means the loop is stuck.")
	m.lastSuccess = m.gauge("last_successful_reconcile_timestamp_seconds",
		"Unix time at which the last successful reconcile pass ended. /healthz fails once this is older than three intervals.")
}

func (m *metrics) registerGateway() {
	m.unreachable = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "portfwd", Name: "gateway_unreachable_total",
		Help: "Times the gateway could not be reached; portfwd retries with backoff. Rising: the router is down, rebooting, or has UPnP/NAT-PMP turned off."})
	m.reg.MustRegister(m.unreachable)
	m.gatewayInfo = m.gaugeVec("gateway_info",
		"The gateway protocol in use (upnp, natpmp, pcp): always 1, the label carries the information.",
		"backend")
}

// Reconciled implements forward.Observer.
func (m *metrics) Reconciled(r forward.ReconcileReport) {
	end := r.Start.Add(r.Duration)
	if r.Start.IsZero() {
		end = m.now()
	}
	result := "ok"
	if r.Err != nil {
		result = "error"
	}
	m.duration.Observe(r.Duration.Seconds())
	m.reconciles.WithLabelValues(r.Reason.String(), result).Inc()
	m.changes.WithLabelValues("made").Add(float64(r.Made))
	m.changes.WithLabelValues("failed").Add(float64(r.Failed))
	m.lastReconcile.Set(float64(end.UnixMilli()) / 1e3)

	m.mu.Lock()
	defer m.mu.Unlock()
	m.ran, m.err = true, r.Err
	if r.Err == nil {
		m.lastOK = end
		m.lastSuccess.Set(float64(end.UnixMilli()) / 1e3)
	}
	if r.Backend != "" {
		m.gatewayInfo.Reset()
		m.gatewayInfo.WithLabelValues(r.Backend).Set(1)
	}
	if r.Err == nil || len(r.Rules) > 0 {
		// A pass that failed before it learnt anything keeps the last
		// known rule states rather than wiping them.
		m.setRules(r.Rules)
	}
}

// setRules replaces the per-rule series, so rules gone from the config
// disappear from /metrics. Every state is exported for every rule (0, or
// 1 for the current one), the Prometheus "state set" convention, so a
// query for a state never finds nothing. Callers hold m.mu.
func (m *metrics) setRules(rules []forward.RuleState) {
	m.ruleUp.Reset()
	m.ruleFamilyUp.Reset()
	m.ruleState.Reset()
	m.leaseExpiry.Reset()
	for _, rs := range rules {
		m.ruleUp.WithLabelValues(rs.Rule).Set(boolFloat(rs.State == forward.RuleOK))
		for _, f := range rs.Families {
			m.ruleFamilyUp.WithLabelValues(rs.Rule, f.String()).Set(boolFloat(!slices.Contains(rs.Down, f)))
		}
		for _, s := range forward.RuleStatuses() {
			m.ruleState.WithLabelValues(rs.Rule, s.String()).Set(boolFloat(rs.State == s))
		}
		if !rs.Expires.IsZero() {
			m.leaseExpiry.WithLabelValues(rs.Rule).Set(float64(rs.Expires.Unix()))
		}
	}
}

// GatewayUnreachable implements forward.Observer.
func (m *metrics) GatewayUnreachable(err error, _ time.Duration) {
	m.unreachable.Inc()
	m.mu.Lock()
	m.err = err
	m.mu.Unlock()
}

// Probed records the verdicts of a reachability check, replacing the last
// check's: rules not in reports disappear.
func (m *metrics) Probed(reports []probe.Report) {
	worst := map[string]int{}
	for _, r := range reports {
		rank := verdictRank(r.Verdict)
		if cur, ok := worst[r.Rule]; !ok || rank > cur {
			worst[r.Rule] = rank
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.probeVerdict.Reset()
	for rule, rank := range worst {
		for i, v := range verdicts {
			m.probeVerdict.WithLabelValues(rule, string(v)).Set(boolFloat(i == rank))
		}
	}
}

// verdictRank orders verdicts by how bad they are; an unknown one counts
// as inconclusive.
func verdictRank(v probe.Verdict) int {
	for i, k := range verdicts {
		if v == k {
			return i
		}
	}
	return 1
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// lockedCollector collects cs under mu, so a scrape never sees a report
// half applied (the vectors reset, the new rules not yet set).
type lockedCollector struct {
	mu *sync.RWMutex
	cs []prometheus.Collector
}

// Describe implements prometheus.Collector.
func (l *lockedCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range l.cs {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (l *lockedCollector) Collect(ch chan<- prometheus.Metric) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, c := range l.cs {
		c.Collect(ch)
	}
}

// Handler serves /metrics (Prometheus exposition) and /healthz.
func (m *metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.InstrumentMetricHandler(m.reg,
		promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})))
	mux.HandleFunc("/healthz", m.healthz)
	return mux
}

// healthz answers 200 "ok" while reconciles succeed, else 503 and why.
func (m *metrics) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if reason := m.unhealthy(); reason != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, reason)
		return
	}
	fmt.Fprintln(w, "ok")
}

// unhealthy says why the daemon is not healthy, or "" when it is: the last
// reconcile succeeded, less than three intervals ago.
func (m *metrics) unhealthy() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	lastErr := ""
	if m.err != nil {
		lastErr = "; last error: " + m.err.Error()
	}
	switch {
	case !m.ran && m.err == nil:
		return "no reconcile yet"
	case m.lastOK.IsZero():
		return "no reconcile has succeeded yet" + lastErr
	case m.err != nil:
		return "the last reconcile attempt failed" + lastErr
	}
	age := m.now().Sub(m.lastOK)
	if m.interval > 0 && age > staleAfter*m.interval {
		return fmt.Sprintf("the last successful reconcile was %s ago, more than %d× the %s interval; the reconcile loop is stuck",
			age.Round(time.Second), staleAfter, m.interval)
	}
	return ""
}

// listenMetrics listens on --metrics' address.
func listenMetrics(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serving metrics: %w; pick another --metrics address, or stop what listens there", err)
	}
	return ln, nil
}

// serveMetrics serves m.Handler on ln until ctx is done, then shuts down
// gracefully.
func serveMetrics(ctx context.Context, ln net.Listener, m *metrics, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           m.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("serving metrics", "addr", ln.Addr().String(), "paths", "/metrics /healthz")
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serving metrics on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shutCtx)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("stopping the metrics server: %w", err)
	}
	return nil
}
