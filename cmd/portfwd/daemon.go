package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/probe"
	"github.com/spf13/cobra"
)

type daemonOptions struct {
	interval, check time.Duration
	cleanup, prune  bool
	metrics         string // address of the Prometheus endpoint; "" for none
	logFormat       string
	probeInterval   time.Duration // 0: no periodic checks
	probe           checkOptions  // --via, --token for them
}

func newDaemonCmd(g *globals) *cobra.Command {
	opts := &daemonOptions{}
	cmd := &cobra.Command{
		Use:   "daemon [FILE]",
		Short: "Keep the router equal to the file, renewing and restoring forwards, until stopped",
		Long: `daemon keeps the router's port forwards equal to FILE for as long as it runs:
it applies the file at start, renews every forward when half its lease is
gone, and restores forwards the router lost (a router reboot forgets them all)
within a few seconds. A systemd service (Restart=always) is the usual way to
run it; use it instead of the apply timer, not beside it.

How it watches:
  --check (2s)     lists the router's forwards, a cheap read, and restores
                   at once any forward of the file that is gone, or
                   re-applies when the router's internet address changed.
                   NAT-PMP and PCP cannot list: there the router's epoch,
                   read on every check, shows that it restarted.
  --interval (5m)  a full re-apply, the safety net for everything else.
  lease            renewal happens at half the lease (gateway.lease, 1h by
                   default). The lease is how long forwards outlive a daemon
                   that stopped (crash, machine off): keep it at least twice
                   --interval, so that a renewal that failed is retried by
                   the interval pass before the forward runs out.

A router that does not answer is retried after 1s, 2s, 4s … up to a minute,
with a fresh connection each time. The state file's lock is held only during
each check and pass (milliseconds), so portfwd apply, status or down can run
beside the daemon, and never change the router at the same time as it.

FILE is re-read on SIGHUP and whenever it changes (checked every second). A
file with mistakes is rejected with file, line and key, and the daemon keeps
the forwards it had. SIGINT or SIGTERM stops it (exit 0); with
--cleanup-on-exit it first removes every forward the file owns.`,
		Example: `  portfwd daemon /etc/portfwd/portfwd.yaml
  portfwd daemon --interval 10m --check 5s
  portfwd daemon --cleanup-on-exit minecraft.yaml   # forwards only while it runs`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDaemon(cmd.Context(), g, args, opts)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&opts.interval, "interval", forward.DefaultInterval, "re-apply the whole file this often")
	f.DurationVar(&opts.check, "check", forward.DefaultCheck, "list the router's forwards this often and restore any that is gone")
	f.BoolVar(&opts.cleanup, "cleanup-on-exit", false, "remove every forward the file owns when stopped")
	f.BoolVar(&g.enableForwarding, "enable-forwarding", false, "iptables backend: turn on net.ipv4.ip_forward if it is off, instead of failing")
	f.BoolVar(&opts.prune, "prune", true, "delete forwards this config owns that are no longer in it")
	f.StringVar(&opts.metrics, "metrics", "", "serve Prometheus metrics on /metrics and a health check on /healthz at this address, e.g. 127.0.0.1:9567")
	f.StringVar(&opts.logFormat, "log-format", "text", "log lines as text or json")
	f.DurationVar(&opts.probeInterval, "probe-interval", 0, "check every rule this often, as portfwd check does, into the log and the metrics (0: never)")
	opts.probe.flags(cmd)
	return cmd
}

func (o *daemonOptions) validate() error {
	if o.interval < time.Second {
		return fmt.Errorf("--interval %s: must be at least 1s", o.interval)
	}
	if o.check < 100*time.Millisecond {
		return fmt.Errorf("--check %s: must be at least 100ms", o.check)
	}
	return nil
}

func runDaemon(ctx context.Context, g *globals, args []string, opts *daemonOptions) error {
	if err := opts.validate(); err != nil {
		return err
	}
	// loadConfig, connect and the loop all write warnings to ErrOut, from
	// more than one goroutine.
	g.io.ErrOut = &lockedWriter{w: g.io.ErrOut}
	path, err := g.configPath(args)
	if err != nil {
		return err
	}
	logger, err := newLogger(g.io.ErrOut, opts.logFormat)
	if err != nil {
		return err
	}
	d := &daemon{g: g, path: path, log: logger}
	cfg, err := d.load(ctx)
	if err != nil {
		return err
	}
	d.cfg = cfg
	ctx, hup, stop := daemonSignals(ctx)
	defer stop()
	m := newMetrics(opts.interval)
	ctx, metricsErr := d.serveMetrics(ctx, opts.metrics, m)
	loop := &forward.Loop{Connect: d.connect, Config: cfg, Prune: opts.prune,
		Interval: opts.interval, Check: opts.check, PassTimeout: g.timeout,
		CleanupOnExit: opts.cleanup, Observer: multiObserver(daemonObserver{d}, m, &readiness{}), Logf: d.logf}
	d.warnLease(cfg, opts.interval)
	d.logf("started: %s, %d rule(s), check every %v, re-apply every %v", path, len(cfg.Rules), opts.check, opts.interval)
	go d.watch(ctx, loop, hup)
	if opts.probeInterval > 0 {
		go d.probeEvery(ctx, opts.probeInterval, &opts.probe, m)
	}
	err = loop.Run(ctx)
	_, _ = sdStopping()
	d.release()
	d.logf("stopped")
	if err == nil {
		err = metricsErr()
	}
	return err
}

// serveMetrics starts the metrics endpoint when addr is set. Should it
// fail (the address is taken), the daemon stops with that error: a
// monitored daemon that cannot be monitored is worse than one that says so.
func (d *daemon) serveMetrics(ctx context.Context, addr string, m *metrics) (context.Context, func() error) {
	if addr == "" {
		return ctx, func() error { return nil }
	}
	ctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	var failed error
	go func() {
		if err := serveMetrics(ctx, addr, m, d.log); err != nil {
			mu.Lock()
			failed = err
			mu.Unlock()
			cancel()
		}
	}()
	return ctx, func() error { mu.Lock(); defer mu.Unlock(); return failed }
}

// readiness tells systemd (Type=notify) the daemon is ready once its first
// pass is done, and keeps its status line current.
type readiness struct{ once sync.Once }

// Reconciled implements forward.Observer.
func (r *readiness) Reconciled(rep forward.ReconcileReport) {
	r.once.Do(func() { _, _ = sdReady() })
	status := fmt.Sprintf("%d rule(s), last pass %s (%s)", len(rep.Rules), rep.Start.Format(time.TimeOnly), rep.Reason)
	if rep.Err != nil {
		status = "gateway: " + oneLine(rep.Err)
	}
	_, _ = sdStatus(status)
}

// GatewayUnreachable implements forward.Observer.
func (r *readiness) GatewayUnreachable(err error, retryIn time.Duration) {
	_, _ = sdStatus(fmt.Sprintf("gateway unreachable, retry in %s: %s", retryIn.Round(time.Second), oneLine(err)))
}

// daemonSignals takes SIGINT and SIGTERM over from main: for a daemon
// they are the normal way to stop, a clean exit 0, not an interruption
// (130). SIGHUP asks for a reload.
func daemonSignals(parent context.Context) (context.Context, <-chan os.Signal, func()) {
	signal.Reset(os.Interrupt, syscall.SIGTERM)
	ctx, stop := signal.NotifyContext(context.WithoutCancel(parent), os.Interrupt, syscall.SIGTERM)
	// A cancelled parent (a test, an embedding program) still stops it.
	unhook := context.AfterFunc(parent, stop)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return ctx, hup, func() { unhook(); stop(); signal.Stop(hup) }
}

// daemon is the state of one `portfwd daemon`: the config it runs and the
// gateway connection it keeps between passes.
//
// The state-file lock: NAT-PMP and PCP sessions hold it from connect to
// close, so the daemon opens one per pass (check or reconcile) and closes
// it at the end of the pass; the lock is held for milliseconds every
// --check, and a concurrent apply waits at most that long. A UPnP session
// needs no state file and is kept between passes until the gateway fails,
// but each pass takes the lock all the same (locked), so an apply never
// changes the gateway in the middle of a pass.
// The protocol auto detection picked first is kept for the daemon's life
// (a reboot must not switch it to NAT-PMP, whose mappings UPnP would see as
// foreign); a reload that changes the gateway section detects again.
type daemon struct {
	g    *globals
	path string
	log  *slog.Logger

	// mu serialises the use of g (viper is not safe for concurrent use)
	// between the loop's connects and the watcher's reloads.
	mu     sync.Mutex
	cfg    *forward.Config
	pinned string   // the protocol in use; "" until the first connect
	kept   *session // the UPnP session kept between passes
}

// logf writes one line to the daemon's log.
func (d *daemon) logf(format string, a ...any) { d.log.Info(fmt.Sprintf(format, a...)) }

func (d *daemon) warnf(format string, a ...any) { d.log.Warn(fmt.Sprintf(format, a...)) }

// load reads and validates the config file.
func (d *daemon) load(ctx context.Context) (*forward.Config, error) {
	return d.g.loadConfig(ctx, []string{d.path})
}

func (d *daemon) warnLease(cfg *forward.Config, interval time.Duration) {
	if lease := cfg.Gateway.Lease; lease > 0 && lease < 2*interval {
		d.warnf("gateway.lease %v is shorter than twice --interval %v: forwards are renewed at half their lease, but a renewal the router refused is retried only at the next interval, after the forward ran out", lease, interval)
	}
}

// connect lends the loop a gateway connection for one pass.
func (d *daemon) connect(ctx context.Context) (*forward.Gateway, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.kept != nil {
		st, err := d.g.openState()
		if err != nil {
			return nil, err
		}
		return d.locked(d.conn(d.kept), st), nil
	}
	cfg := *d.cfg
	if d.pinned != "" {
		cfg.Gateway.Backend = d.pinned
	}
	s, err := d.g.connect(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	p := s.backend.Properties()
	if d.pinned == "" {
		d.pinned = p.Name
		d.logf("gateway: %s at %s%s", p.Name, p.Gateway, why(s))
	}
	if !p.ListsFromState {
		// UPnP needs no state file, but the pass holds its lock all the
		// same, so that an apply from a timer and the daemon never change
		// the gateway at once.
		st := s.state
		s.state = nil
		if st == nil {
			if st, err = d.g.openState(); err != nil {
				return nil, err
			}
		}
		d.kept = s
		return d.locked(d.conn(s), st), nil
	}
	return d.conn(s), nil
}

// locked makes c's pass release the state lock st when it ends.
func (d *daemon) locked(c *forward.Gateway, st *forward.State) *forward.Gateway {
	release := c.Release
	c.Release = func(err error) {
		st.Close()
		release(err)
	}
	return c
}

func why(s *session) string {
	if s.why == "" {
		return ""
	}
	return fmt.Sprintf(" (answered: %s; %s)", strings.Join(s.answered, ", "), s.why)
}

func (d *daemon) conn(s *session) *forward.Gateway {
	return &forward.Gateway{Backend: s.backend, Self: s.self, Release: func(err error) { d.done(s, err) }}
}

// done ends a pass on s: its warnings are logged (a NAT-PMP or PCP epoch
// reset), the state file is closed, and a kept session that failed is
// dropped so the next pass connects afresh.
func (d *daemon) done(s *session, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s != d.kept {
		if s.warnings != nil {
			for _, w := range s.warnings() {
				d.warnf("%s", w)
			}
		}
		s.close()
		return
	}
	if err != nil {
		d.kept = nil
	}
}

// release closes the kept session.
func (d *daemon) release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.kept != nil {
		d.kept.close()
		d.kept = nil
	}
}

// watch reloads the config on SIGHUP and when the file changes.
func (d *daemon) watch(ctx context.Context, loop *forward.Loop, hup <-chan os.Signal) {
	last := fileStamp(d.path)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			last = fileStamp(d.path)
			d.reload(ctx, loop, "SIGHUP")
		case <-tick.C:
			now := fileStamp(d.path)
			if now == last || now == (stamp{}) {
				continue
			}
			last = settled(ctx, d.path, now)
			d.reload(ctx, loop, "the file changed")
		}
	}
}

// stamp is what tells a changed file: its modification time and size.
type stamp struct {
	mod  time.Time
	size int64
}

// fileStamp is path's stamp; the zero stamp when it cannot be read (an
// editor replacing it): no change.
func fileStamp(path string) stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}
	}
	return stamp{fi.ModTime(), fi.Size()}
}

// settled waits until the file stops changing for a moment, so that a
// file read half-written (truncated, then written) is not taken for the
// new config.
func settled(ctx context.Context, path string, s stamp) stamp {
	for range 10 {
		select {
		case <-ctx.Done():
			return s
		case <-time.After(200 * time.Millisecond):
		}
		now := fileStamp(path)
		if now == s {
			return s
		}
		s = now
	}
	return s
}

// reload reads the file again and hands a valid config to the loop; an
// invalid one is rejected and the running set kept.
func (d *daemon) reload(ctx context.Context, loop *forward.Loop, why string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cfg, err := d.load(ctx)
	if err != nil {
		d.warnf("rejected the new config, keeping the running set: %s", oneLine(err))
		return
	}
	old := d.cfg
	d.cfg = cfg
	if !reflect.DeepEqual(old.Gateway, cfg.Gateway) {
		d.pinned = "" // detect again with the new settings
		if d.kept != nil {
			d.kept.close()
			d.kept = nil
		}
	}
	d.logf("reloaded (%s): %s", why, ruleChanges(old, cfg))
	loop.Reload(cfg)
}

// oneLine is a config error on one line: its problems (each with file,
// line and key) joined by "; ".
func oneLine(err error) string {
	var ce *forward.ConfigError
	if errors.As(err, &ce) {
		lines := make([]string, len(ce.Problems))
		for i, p := range ce.Problems {
			lines[i] = p.String()
		}
		return strings.Join(lines, "; ")
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// ruleChanges says what a reload changed: "+rule ssh, -rule game,
// ~rule web", and whether the gateway section changed.
func ruleChanges(old, cfg *forward.Config) string {
	var out []string
	for _, r := range cfg.Rules {
		was, ok := old.Rule(r.Name)
		switch {
		case !ok:
			out = append(out, "+rule "+r.Name)
		case !sameRule(was, r):
			out = append(out, "~rule "+r.Name)
		}
	}
	for _, r := range old.Rules {
		if _, ok := cfg.Rule(r.Name); !ok {
			out = append(out, "-rule "+r.Name)
		}
	}
	if !reflect.DeepEqual(old.Gateway, cfg.Gateway) {
		out = append(out, "gateway settings changed")
	}
	if len(out) == 0 {
		return "no rule changed"
	}
	return strings.Join(out, ", ")
}

// sameRule compares two rules apart from where they stand in the file.
func sameRule(a, b forward.Rule) bool {
	a.Line, b.Line = 0, 0
	return reflect.DeepEqual(a, b)
}

// daemonObserver logs each pass of the loop on one line.
type daemonObserver struct{ d *daemon }

// Reconciled implements forward.Observer.
func (o daemonObserver) Reconciled(r forward.ReconcileReport) {
	if r.Err != nil {
		o.d.warnf("reconcile (%s) failed: %v", r.Reason, r.Err)
		return
	}
	var bad []string
	for _, rs := range r.Rules {
		if rs.State != forward.RuleOK {
			bad = append(bad, fmt.Sprintf("%s %s: %s", rs.Rule, rs.State, rs.Error))
		}
	}
	msg := fmt.Sprintf("reconciled (%s) over %s: %d change(s) made, %d failed, in %v", r.Reason, r.Backend, r.Made, r.Failed, r.Duration.Round(time.Millisecond))
	if len(bad) > 0 {
		o.d.warnf("%s; %s", msg, strings.Join(bad, "; "))
		return
	}
	if r.Made > 0 || r.Reason != forward.JobInterval {
		o.d.logf("%s", msg) // a quiet interval pass is not worth a line
	}
}

// GatewayUnreachable implements forward.Observer.
func (o daemonObserver) GatewayUnreachable(err error, retryIn time.Duration) {
	o.d.warnf("gateway unreachable, retrying in %v: %s", retryIn.Round(100*time.Millisecond), oneLine(err))
}

// lockedWriter serialises writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// probeEvery runs the layered check of every rule each interval, logging
// each verdict and exporting it as a metric.
func (d *daemon) probeEvery(ctx context.Context, every time.Duration, opts *checkOptions, m *metrics) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		reports, err := d.probeOnce(ctx, opts)
		if err != nil {
			d.warnf("check: %s", oneLine(err))
			continue
		}
		for _, r := range reports {
			d.logf("check %s %s: %s%s", r.Rule, r.External, r.Verdict, map[bool]string{true: "", false: ": " + r.Cause}[r.Cause == ""])
		}
		m.Probed(reports)
	}
}

// probeOnce checks the running config through the protocol in use: the
// kept UPnP session, or a session of its own for NAT-PMP and PCP, closed
// at once so the state lock is held no longer than the check.
func (d *daemon) probeOnce(ctx context.Context, opts *checkOptions) ([]probe.Report, error) {
	ctx, cancel := context.WithTimeout(ctx, d.g.timeout)
	defer cancel()
	d.mu.Lock()
	cfg := *d.cfg
	s := d.kept
	var err error
	if s == nil {
		if d.pinned != "" {
			cfg.Gateway.Backend = d.pinned
		}
		s, err = d.g.connect(ctx, &cfg)
		if err == nil {
			defer s.close()
		}
	}
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	reports, _, err := d.g.check(ctx, &cfg, s, opts)
	return reports, err
}
