package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/probe"
)

// daemonHelp is portfwd daemon --help.
const daemonHelp = `daemon keeps the router's port forwards equal to FILE for as long as it runs:
it applies the file at start, renews every forward when half its lease is
gone, and restores forwards the router lost (a router reboot forgets them all)
within a few seconds. A systemd service (Restart=on-failure) is the usual
way to run it; use it instead of the apply timer, not beside it.

How it watches:
  --check (3s)     a cheap read of the router that restores at once any
                   forward of the file that is gone, or re-applies when the
                   router's internet address changed. On UPnP it is one
                   request: one forward, each in turn, and every tenth check
                   the internet address instead, so a rebooted router is
                   found within two checks. iptables lists the forwards;
                   NAT-PMP and PCP cannot list: there the router's epoch,
                   read on every check, shows that it restarted.
  --interval (15m) a full re-apply, the safety net for everything else: it
                   reads the router's whole table, on a UPnP IGD:1 router
                   one request per forward on it. With the defaults a UPnP
                   router gets under 30 requests a minute, even with 60
                   rules.
  lease            renewal happens at half the lease (gateway.lease, 1h by
                   default). The lease is how long forwards outlive a daemon
                   that stopped (crash, machine off): keep it at least twice
                   --interval, so that a renewal that failed is retried by
                   the interval pass before the forward runs out.

A router that does not answer is retried after 1s, 2s, 4s … up to a minute,
with a fresh connection each time. --timeout bounds each request to the
router, not a pass: the first pass of a long file on a slow router takes
as long as the router needs. portfwd's run lock is held only during
each check and pass (milliseconds), so portfwd apply, status or down can run
beside the daemon, and never change the router at the same time as it.

--docker also forwards what running Docker containers ask for with
portfwd.* labels (README "Docker containers"), tagged pf:docker:<container>:
the engine's events (start, stop, die, destroy, rename) are followed at
once, a stopped container's forward goes after --docker-grace, and the
engine (DOCKER_HOST, else /var/run/docker.sock) is only read.

FILE is re-read on SIGHUP and whenever it changes (checked every second). A
file with mistakes is rejected with file, line and key, and the daemon keeps
the forwards it had. SIGINT or SIGTERM stops it (exit 0); with
--cleanup-on-exit it first removes every forward the file owns.`

// passLimit bounds one pass of the daemon, and one periodic check. Every
// request of a pass is bounded by --timeout on its own (the backends apply
// it), so a pass ends by itself; --timeout for the whole pass would cut
// the first pass of a long file on a slow router short. This only keeps
// the loop going should a pass never end, and is far past the longest
// real one: the 1,000 rules a config may hold, made on a router that
// takes a second for each.
const passLimit = 30 * time.Minute

// daemonOptions is everything the daemon needs, resolved from flags.
type daemonOptions struct {
	IO       IOStreams
	StateDir string
	// Path finds the config file; Load reads it (again, on a reload).
	Path func() (string, error)
	Load func(ctx context.Context, path string) (*forward.Config, error)
	// Open opens the gateway cfg names, or backend when not empty,
	// without the run lock: the daemon takes it for each pass.
	Open func(ctx context.Context, cfg *forward.Config, backend string) (*forward.Gateway, error)

	Interval, Check  time.Duration
	Cleanup, Prune   bool
	EnableForwarding bool
	Metrics          string // address of the Prometheus endpoint; "" for none
	LogFormat        string
	ProbeInterval    time.Duration // 0: no periodic checks
	Vantage          vantageFlags  // --via, --token for them
	Docker           dockerFlags   // --docker: the containers' forwards too
}

func newCmdDaemon(f *factory, runF func(context.Context, *daemonOptions) error) *cobra.Command {
	opts := &daemonOptions{}
	cmd := &cobra.Command{
		Use:   "daemon [FILE]",
		Short: "Keep the router equal to the file, renewing and restoring forwards, until stopped",
		Long:  daemonHelp,
		Example: `  portfwd daemon /etc/portfwd/portfwd.yaml
  portfwd daemon --interval 10m --check 5s
  portfwd daemon --cleanup-on-exit minecraft.yaml   # forwards only while it runs`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.resolve(f, args)
			return runOr(cmd.Context(), runF, runDaemon, opts)
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&opts.Interval, "interval", forward.DefaultInterval, "re-apply the whole file this often")
	fl.DurationVar(&opts.Check, "check", forward.DefaultCheck, "look at the router this often (on UPnP one forward in turn) and restore any forward that is gone")
	fl.BoolVar(&opts.Cleanup, "cleanup-on-exit", false, "remove every forward the file owns when stopped")
	fl.BoolVar(&opts.EnableForwarding, "enable-forwarding", false, "iptables backend: turn on net.ipv4.ip_forward if it is off (until reboot; says so), instead of failing")
	fl.BoolVar(&opts.Prune, "prune", true, "delete forwards this config owns that are no longer in it")
	fl.StringVar(&opts.Metrics, "metrics", "", "serve Prometheus metrics on /metrics and a health check on /healthz at this address, e.g. 127.0.0.1:9567")
	fl.StringVar(&opts.LogFormat, "log-format", "text", "log lines as text or json")
	fl.DurationVar(&opts.ProbeInterval, "probe-interval", 0, "check every rule this often, as portfwd check does, into the log and the metrics (0: never)")
	opts.Vantage.flags(cmd)
	opts.Docker.flags(cmd, true)
	return cmd
}

// resolve fills in what comes from the factory.
func (o *daemonOptions) resolve(f *factory, args []string) {
	o.IO, o.StateDir = f.IO, f.Settings.StateDir
	o.Path = func() (string, error) { return f.configPath(args) }
	o.Load = f.loadFile
	o.Open = func(ctx context.Context, cfg *forward.Config, backend string) (*forward.Gateway, error) {
		return f.open(ctx, cfg, accessChange, o.EnableForwarding, backend)
	}
}

func (o *daemonOptions) validate() error {
	if o.Interval < time.Second {
		return fmt.Errorf("--interval %s: must be at least 1s", o.Interval)
	}
	if o.Check < 100*time.Millisecond {
		return fmt.Errorf("--check %s: must be at least 100ms", o.Check)
	}
	return checkMetricsAddr(o.Metrics)
}

// checkMetricsAddr checks the form of --metrics before any work, so a
// typo is the daemon's first and only word, not a failed pass's sequel.
func checkMetricsAddr(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return fmt.Errorf("--metrics %q: want HOST:PORT with a port up to 65535, e.g. 127.0.0.1:9567", addr)
	}
	return nil
}

// daemon is one running portfwd daemon: its log and the config it runs,
// which a reload replaces while checks read it from another goroutine.
type daemon struct {
	opts    *daemonOptions
	log     *slog.Logger
	path    string
	current atomic.Pointer[forward.Config]
	// containers is the containers' config (--docker), nil until the
	// engine answered: checked beside the file's by --probe-interval.
	containers atomic.Pointer[forward.Config]
	dialer     *forward.Dialer
}

func runDaemon(ctx context.Context, opts *daemonOptions) error {
	if err := opts.validate(); err != nil {
		return err
	}
	d, err := newDaemon(ctx, opts)
	if err != nil {
		return err
	}
	ctx, hup, stop := daemonSignals(ctx)
	defer stop()
	m := newMetrics(opts.Interval)
	ctx, metricsErr, err := d.serveMetrics(ctx, opts.Metrics, m)
	if err != nil {
		return err
	}
	rules := &ruleUnion{next: m}
	loop := d.loop(rules.part(0))
	var sources sync.WaitGroup
	if opts.Docker.On {
		if err := d.runDocker(ctx, forward.Observers(forward.LogObserver{Log: d.log}, rules.part(1)), &sources); err != nil {
			return err
		}
	}
	d.warnLease(opts.Interval)
	d.logf("started: %s, %d rule(s), check every %v, re-apply every %v", d.path, len(loop.Config.Rules), opts.Check, opts.Interval)
	go d.reloader(loop, hup).Run(ctx)
	if opts.ProbeInterval > 0 {
		go d.probeEvery(ctx, m)
	}
	err = loop.Run(ctx)
	sources.Wait()
	_, _ = sdStopping()
	d.logf("stopped")
	if err == nil {
		err = metricsErr()
	}
	return err
}

// newDaemon finds and loads the config and sets up the log and the
// gateway dialer.
func newDaemon(ctx context.Context, opts *daemonOptions) (*daemon, error) {
	logger, err := newLogger(opts.IO.ErrOut, opts.LogFormat)
	if err != nil {
		return nil, err
	}
	path, err := opts.Path()
	if err != nil {
		return nil, err
	}
	cfg, err := opts.Load(ctx, path)
	if err != nil {
		return nil, err
	}
	d := &daemon{opts: opts, log: logger, path: path}
	d.store(cfg)
	d.dialer = &forward.Dialer{
		Open: func(ctx context.Context, backend string) (*forward.Gateway, error) {
			return opts.Open(ctx, d.current.Load(), backend)
		},
		Lock:  func() (*forward.RunLock, error) { return forward.LockRun(opts.StateDir, forward.DefaultLockWait) },
		Logf:  d.logf,
		Warnf: d.warnf,
	}
	return d, nil
}

// loop is the reconcile loop over the dialer, observed by the log, the
// metrics and systemd.
func (d *daemon) loop(m forward.Observer) *forward.Loop {
	o := d.opts
	return &forward.Loop{Connect: d.dialer.Connect, Config: d.current.Load(), Prune: o.Prune,
		Interval: o.Interval, Check: o.Check, PassTimeout: passLimit, CleanupOnExit: o.Cleanup,
		Observer: forward.Observers(forward.LogObserver{Log: d.log}, m, &readiness{}), Logf: d.logf}
}

// reloader reads the file again on SIGHUP and when it changes.
func (d *daemon) reloader(loop *forward.Loop, hup <-chan os.Signal) *forward.Reloader {
	load := func(ctx context.Context) (*forward.Config, error) {
		cfg, err := d.opts.Load(ctx, d.path)
		if err == nil {
			d.store(cfg)
		}
		return cfg, err
	}
	return &forward.Reloader{Path: d.path, Load: load, Loop: loop, Dialer: d.dialer, Hint: hup, Logf: d.logf, Warnf: d.warnf}
}

// store makes cfg the config the loop and the dialer use, and remembers
// its name and file (forward.Registry) so that status can tell when the
// file is gone.
func (d *daemon) store(cfg *forward.Config) {
	d.current.Store(cfg)
	forward.Registry{Dir: d.opts.StateDir}.Record(cfg.Name, d.path)
}

// logf writes one line to the daemon's log.
func (d *daemon) logf(format string, a ...any) { d.log.Info(fmt.Sprintf(format, a...)) }

func (d *daemon) warnf(format string, a ...any) { d.log.Warn(fmt.Sprintf(format, a...)) }

func (d *daemon) warnLease(interval time.Duration) {
	if lease := d.current.Load().Gateway.Lease; lease > 0 && lease < 2*interval {
		d.warnf("gateway.lease %v is shorter than twice --interval %v: forwards are renewed at half their lease, but a renewal the router refused is retried only at the next interval, after the forward ran out", lease, interval)
	}
}

// serveMetrics starts the metrics endpoint when addr is set. It listens
// before the first pass, so an address that is taken stops the daemon
// before any work; should serving fail later, the daemon stops with that
// error: a monitored daemon that cannot be monitored is worse than one
// that says so.
func (d *daemon) serveMetrics(ctx context.Context, addr string, m *metrics) (context.Context, func() error, error) {
	if addr == "" {
		return ctx, func() error { return nil }, nil
	}
	ln, err := listenMetrics(addr)
	if err != nil {
		return ctx, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	var failed error
	go func() {
		if err := serveMetrics(ctx, ln, m, d.log); err != nil {
			mu.Lock()
			failed = err
			mu.Unlock()
			cancel()
		}
	}()
	return ctx, func() error { mu.Lock(); defer mu.Unlock(); return failed }, nil
}

// readiness tells systemd (Type=notify) the daemon is ready once its first
// pass is done, and keeps its status line current.
type readiness struct{ once sync.Once }

// Reconciled implements forward.Observer.
func (r *readiness) Reconciled(rep forward.ReconcileReport) {
	r.once.Do(func() { _, _ = sdReady() })
	status := fmt.Sprintf("%d rule(s), last pass %s (%s)", len(rep.Rules), rep.Start.Format(time.TimeOnly), rep.Reason)
	if rep.Err != nil {
		status = "gateway: " + forward.OneLine(rep.Err)
	}
	_, _ = sdStatus(status)
}

// GatewayUnreachable implements forward.Observer.
func (r *readiness) GatewayUnreachable(err error, retryIn time.Duration) {
	_, _ = sdStatus(fmt.Sprintf("gateway unreachable, retry in %s: %s", retryIn.Round(time.Second), forward.OneLine(err)))
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

// probeEvery runs the layered check of every rule each probe interval,
// logging each verdict and exporting it as a metric.
func (d *daemon) probeEvery(ctx context.Context, m *metrics) {
	t := time.NewTicker(d.opts.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		reports, err := d.probeOnce(ctx)
		if err != nil {
			d.warnf("check: %s", forward.OneLine(err))
			continue
		}
		for _, r := range reports {
			d.logf("check %s %s: %s%s", r.Rule, r.External, r.Verdict, map[bool]string{true: "", false: ": " + r.Cause}[r.Cause == ""])
		}
		m.Probed(reports)
	}
}

// probeOnce checks the running config through the gateway the loop uses,
// borrowed from the dialer for the check like a pass.
func (d *daemon) probeOnce(ctx context.Context) ([]probe.Report, error) {
	ctx, cancel := context.WithTimeout(ctx, passLimit)
	defer cancel()
	g, err := d.dialer.Connect(ctx)
	if err != nil {
		return nil, err
	}
	checked, err := runChecks(ctx, d.current.Load(), g, d.opts.Vantage, nil)
	if c := d.containers.Load(); err == nil && c != nil && len(c.Rules) > 0 {
		var more checkResult
		more, err = runChecks(ctx, c, g, d.opts.Vantage, nil)
		checked.reports = append(checked.reports, more.reports...)
	}
	g.Done(err)
	return checked.reports, err
}
