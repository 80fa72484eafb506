package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/internal/lab"
)

// The daemon's lab tests run `portfwd daemon` in the LAN namespace in the
// background, against a real miniupnpd, and prove from the WAN side that
// its forwards stay up.

// daemonProc is a `portfwd daemon` running in the lab.
type daemonProc struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
	code int
}

// labEnv is the environment portfwd runs with in a lab: its own discovery
// cache and state directory, as portfwd() sets them.
func labEnv(l *lab.Lab) []string {
	return append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(l.Dir, "cache"), "PORTFWD_STATE_DIR="+filepath.Join(l.Dir, "state"))
}

// startDaemon runs portfwd daemon args... until the test ends (SIGTERM).
func startDaemon(t *testing.T, l *lab.Lab, args ...string) *daemonProc {
	t.Helper()
	return startDaemonIn(t, l, lab.LAN, args...)
}

// startDaemonIn runs portfwd daemon args... on lab host h until the test
// ends (SIGTERM).
func startDaemonIn(t *testing.T, l *lab.Lab, h lab.Host, args ...string) *daemonProc {
	t.Helper()
	cmd := l.Command(h, binary(t), append([]string{"daemon"}, args...)...)
	cmd.Env = labEnv(l)
	return startDaemonCmd(t, cmd, args)
}

// startDaemonCmd starts cmd, a portfwd daemon run with args, and stops it
// when t ends.
func startDaemonCmd(t *testing.T, cmd *exec.Cmd, args []string) *daemonProc {
	t.Helper()
	d := &daemonProc{cmd: cmd, log: &syncBuffer{}, done: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting portfwd daemon: %v", err)
	}
	go func() {
		_ = d.cmd.Wait()
		d.code = d.cmd.ProcessState.ExitCode()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.stop(t)
		t.Logf("portfwd daemon %s → exit %d\n%s", strings.Join(args, " "), d.code, d.log)
	})
	return d
}

// stop sends SIGTERM and waits for the exit code.
func (d *daemonProc) stop(t *testing.T) int {
	t.Helper()
	select {
	case <-d.done:
		return d.code
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		t.Errorf("portfwd daemon did not stop within 20s of SIGTERM")
	}
	return d.code
}

// waitLog waits until the daemon's log contains s n times in all.
func (d *daemonProc) waitLog(t *testing.T, s string, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for strings.Count(d.log.String(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon's log has %d×%q after %v, want %d:\n%s", strings.Count(d.log.String(), s), s, within, n, d.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wanProber connects from the WAN to a forwarded TCP port every 500 ms and
// keeps every probeAttempt.
type wanProber struct {
	mu       sync.Mutex
	attempts []probeAttempt
	stop     chan struct{}
	done     chan struct{}
}

type probeAttempt struct {
	at  time.Time
	err error
}

func startProber(l *lab.Lab, port int, want string) *wanProber {
	p := &wanProber{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			at := time.Now()
			got, err := fromWAN(l, "tcp", port)
			if err == nil && !strings.HasPrefix(got, want) {
				err = &wanUnexpectedReply{got}
			}
			p.mu.Lock()
			p.attempts = append(p.attempts, probeAttempt{at, err})
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

type wanUnexpectedReply struct{ got string }

func (e *wanUnexpectedReply) Error() string { return "unexpected reply " + e.got }

func (p *wanProber) end() []probeAttempt {
	close(p.stop)
	<-p.done
	return p.attempts
}

// firstSuccessAfter is when the wanProber first got through after t0.
func (p *wanProber) firstSuccessAfter(t0 time.Time, within time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for _, a := range p.attempts {
			if a.at.After(t0) && a.err == nil {
				p.mu.Unlock()
				return a.at, true
			}
		}
		p.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	return time.Time{}, false
}

// waitReachable waits until the forward answers from the WAN.
func waitReachable(t *testing.T, l *lab.Lab, port int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		_, err := fromWAN(l, "tcp", port)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tcp/%d not reachable from the WAN within %v: %v", port, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rebootAndMeasure reboots the router while p probes, and returns how
// long after the router was back up the forward answered again.
func rebootAndMeasure(t *testing.T, l *lab.Lab, p *wanProber) (rebootStart, restored time.Time) {
	t.Helper()
	rebootStart = time.Now()
	if err := l.Reboot(t.Context()); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	restored, ok := p.firstSuccessAfter(up, 30*time.Second)
	if !ok {
		t.Fatalf("the forward did not come back within 30s of the router's reboot")
	}
	t.Logf("router reboot took %v; forward restored after %v", up.Sub(rebootStart).Round(time.Millisecond), restored.Sub(up).Round(time.Millisecond))
	if d := restored.Sub(up); d > 10*time.Second {
		t.Errorf("restored after %v, want within 10s", d)
	}
	return rebootStart, restored
}

const soakConfig = `gateway: {lease: 30s}
rules:
  - name: minecraft
    service: minecraft-java
`

// TestLabDaemonSoak is the acceptance test: with a 30 s lease the daemon
// keeps a forward up for over three minutes, renewing it, while a wanProber
// on the WAN connects every 500 ms and never fails, except while the
// router reboots at ~67 s, after which the forward is back within 10 s.
func TestLabDaemonSoak(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	l.Serve(t, lab.LAN, "tcp", 25565, "minecraft on lan")
	d := startDaemon(t, l, writeConfig(t, soakConfig))
	d.waitLog(t, "created minecraft tcp/25565", 1, 15*time.Second)
	waitReachable(t, l, 25565, 5*time.Second)
	begin := time.Now()
	p := startProber(l, 25565, "minecraft on lan")

	// Renewals come every 15 s from the start: reboot between two, so that
	// the check, not a renewal, is what finds the forward gone.
	time.Sleep(67 * time.Second)
	rebootStart, restored := rebootAndMeasure(t, l, p)
	time.Sleep(time.Until(begin.Add(190 * time.Second)))
	attempts := p.end()

	var failed []string
	for _, a := range attempts {
		if a.err != nil && (a.at.Before(rebootStart) || a.at.After(restored)) {
			failed = append(failed, a.at.Sub(begin).Round(time.Millisecond).String()+": "+a.err.Error())
		}
	}
	t.Logf("%d connections over %v", len(attempts), time.Since(begin).Round(time.Second))
	if len(failed) > 0 {
		t.Errorf("%d of %d connections failed outside the reboot:\n%s", len(failed), len(attempts), strings.Join(failed, "\n"))
	}
	if len(attempts) < 300 {
		t.Errorf("only %d connections in the soak; the wanProber stalled", len(attempts))
	}
	// 190 s with a 30 s lease renewed every 15 s: about a dozen renewals.
	if n := strings.Count(d.log.String(), "renewed minecraft tcp/25565"); n < 8 {
		t.Errorf("the log shows %d renewals, want at least 8", n)
	}
	if !strings.Contains(d.log.String(), "reconciled ("+forward.JobMissing.String()+")") {
		t.Errorf("the log does not show the restore after the reboot as %q", forward.JobMissing.String())
	}
	if code := d.stop(t); code != 0 {
		t.Errorf("daemon exit %d after SIGTERM, want 0", code)
	}
}

func TestLabDaemonNATPMPReboot(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	l.Serve(t, lab.LAN, "tcp", 25565, "minecraft on lan")
	d := startDaemon(t, l, writeConfig(t, "gateway: {backend: natpmp, lease: 1h}\nrules:\n  - name: minecraft\n    service: minecraft-java\n"))
	d.waitLog(t, "created minecraft tcp/25565", 1, 15*time.Second)
	waitReachable(t, l, 25565, 5*time.Second)
	p := startProber(l, 25565, "minecraft on lan")
	// The router has been up a few seconds by now, and the daemon reads
	// its epoch at every check: a restart shows as the epoch going backwards.
	time.Sleep(3 * time.Second)
	rebootAndMeasure(t, l, p)
	p.end()
	if !strings.Contains(d.log.String(), "the gateway restarted (NAT-PMP epoch") ||
		!strings.Contains(d.log.String(), "reconciled ("+forward.JobRestarted.String()+")") {
		t.Errorf("the log should show the epoch reset and the restore as %q", forward.JobRestarted.String())
	}
	if code := d.stop(t); code != 0 {
		t.Errorf("daemon exit %d after SIGTERM, want 0", code)
	}
}

// TestLabDaemonConfigEdited: the file edited while the daemon runs — a rule
// added and one removed — is on the router within seconds; an edit with a
// mistake is rejected with file, line and key, and the router keeps the
// previous set.
func TestLabDaemonConfigEdited(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	cfg := writeConfig(t, "rules:\n  - name: minecraft\n    service: minecraft-java\n  - name: web\n    protocol: tcp\n    external_port: 8080\n")
	d := startDaemon(t, l, "--cleanup-on-exit", cfg)
	d.waitLog(t, "created web tcp/8080", 1, 15*time.Second)
	holds := func() string { return routerHolds(t, l) }

	edited := "rules:\n  - name: minecraft\n    service: minecraft-java\n  - name: ssh\n    protocol: tcp\n    external_port: 2222\n    internal_port: 2222\n"
	if err := os.WriteFile(cfg, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	edit := time.Now()
	d.waitLog(t, "reloaded (the file changed): +rule ssh, -rule web", 1, 5*time.Second)
	d.waitLog(t, "deleted web tcp/8080", 1, 5*time.Second)
	d.waitLog(t, "created ssh tcp/2222", 1, 5*time.Second)
	t.Logf("the edit reached the router after %v", time.Since(edit).Round(time.Millisecond))
	if h := holds(); !strings.Contains(h, "2222->") || strings.Contains(h, "8080->") || !strings.Contains(h, "25565->") {
		t.Errorf("after the edit the router should hold tcp/25565 and tcp/2222, not tcp/8080:\n%s", h)
	}

	typo := strings.Replace(edited, "internal_port", "internl_port", 1)
	if err := os.WriteFile(cfg, []byte(typo), 0o644); err != nil {
		t.Fatal(err)
	}
	d.waitLog(t, "rejected the new config, keeping the running set: "+cfg+":7: rules[1].internl_port", 1, 5*time.Second)
	time.Sleep(2500 * time.Millisecond) // a check or two
	if h := holds(); !strings.Contains(h, "2222->") || !strings.Contains(h, "25565->") {
		t.Errorf("after a rejected edit the router should still hold tcp/25565 and tcp/2222:\n%s", h)
	}

	// SIGHUP reloads too; then --cleanup-on-exit removes what it owns.
	if err := os.WriteFile(cfg, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	d.waitLog(t, "reloaded (the file changed): no rule changed", 1, 5*time.Second)
	_ = d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitLog(t, "reloaded (SIGHUP)", 1, 5*time.Second)
	upnpc(t, l, "-e", "someone else", "-a", l.LANHost.String(), "3074", "3074", "UDP")
	if code := d.stop(t); code != 0 {
		t.Errorf("daemon exit %d after SIGTERM, want 0", code)
	}
	if h := holds(); strings.Contains(h, "portfwd:") || !strings.Contains(h, "someone else") {
		t.Errorf("after --cleanup-on-exit the router should hold only the foreign mapping:\n%s", h)
	}
}

// TestLabConcurrentApplies: two portfwd apply at once against one state
// directory, beside a running NAT-PMP daemon: all exit 0 (one waits for the
// lock), and the state file is valid and records exactly the rules.
func TestLabConcurrentApplies(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	cfg := writeConfig(t, stateRules("natpmp"))
	d := startDaemon(t, l, cfg)
	d.waitLog(t, "reconciled (start)", 1, 15*time.Second)
	var wg sync.WaitGroup
	results := make([]cli, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = portfwd(t, l, "apply", "--no-probe", cfg)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != exitOK && !strings.Contains(r.stderr, "another portfwd is changing the gateway") {
			t.Errorf("apply %d: exit %d without the lock message:\n%s", i, r.code, r.stderr)
		}
	}
	raw, err := os.ReadFile(filepath.Join(l.Dir, "state", "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st recordsFile
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf("state file is not valid JSON: %v\n%s", err, raw)
	}
	var keys []string
	for _, g := range st.Gateways {
		for _, e := range g.Entries {
			keys = append(keys, g.Protocol+" "+e.Key.String())
		}
	}
	slices.Sort(keys)
	if strings.Join(keys, ", ") != "natpmp tcp/25565, natpmp udp/19132" {
		t.Errorf("state records %v, want exactly natpmp tcp/25565 and udp/19132:\n%s", keys, raw)
	}
	if code := d.stop(t); code != 0 {
		t.Errorf("daemon exit %d after SIGTERM, want 0", code)
	}
}

// TestLabDaemonMetrics scrapes the daemon's Prometheus endpoint: the rule
// states, the protocol in use, and a healthy /healthz.
func TestLabDaemonMetrics(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	addr := netip.AddrPortFrom(l.LANHost, 9567).String()
	d := startDaemon(t, l, "--metrics", addr, "--log-format", "json", "--probe-interval", "1s", writeConfig(t, minecraftRule))
	d.waitLog(t, "reconciled (start)", 1, 10*time.Second)
	if !strings.Contains(d.log.String(), `"level":"INFO"`) {
		t.Errorf("--log-format json: the log is not JSON lines:\n%s", d.log)
	}
	var body string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if body = httpGetIn(t, l, lab.LAN, addr, "/metrics"); strings.Contains(body, `portfwd_rule_up{rule="minecraft"} 1`) {
			break
		}
	}
	for _, want := range []string{`portfwd_rule_up{rule="minecraft"} 1`, `portfwd_rule_state{rule="minecraft",state="ok"} 1`,
		`portfwd_gateway_info{backend="upnp"} 1`, `portfwd_reconciles_total{reason="start",result="ok"} 1`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
	// No server runs on the LAN host: the periodic check says so, in the
	// log and in the metrics.
	d.waitLog(t, "check minecraft tcp/25565: unreachable: nothing listening", 1, 10*time.Second)
	if body := httpGetIn(t, l, lab.LAN, addr, "/metrics"); !strings.Contains(body, `portfwd_probe_verdict{rule="minecraft",verdict="unreachable"} 1`) {
		t.Errorf("/metrics lacks the probe verdict:\n%s", body)
	}
	if h := httpGetIn(t, l, lab.LAN, addr, "/healthz"); !strings.HasPrefix(h, "HTTP/1.0 200") && !strings.HasPrefix(h, "HTTP/1.1 200") {
		t.Errorf("/healthz:\n%s", h)
	}
}

// httpGetIn fetches path from addr with a connection opened inside h's
// namespace, and returns the whole response, status line included.
func httpGetIn(t *testing.T, l *lab.Lab, h lab.Host, addr, path string) string {
	t.Helper()
	var c net.Conn
	if err := l.Do(h, func() (err error) { c, err = net.DialTimeout("tcp", addr, time.Second); return err }); err != nil {
		return ""
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, addr)
	b, _ := io.ReadAll(c)
	return string(b)
}

// TestLabApplyBesideUPnPDaemon: apply runs beside a daemon on UPnP (which
// takes the state lock for each pass, not for its life) and finds nothing
// to change.
func TestLabApplyBesideUPnPDaemon(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	cfg := writeConfig(t, minecraftRule)
	d := startDaemon(t, l, "--check", "200ms", cfg)
	d.waitLog(t, "reconciled (start)", 1, 10*time.Second)
	for i := 0; i < 3; i++ {
		r := portfwd(t, l, "apply", "--no-probe", "-o", "json", cfg)
		if doc := decode[applyDoc](t, r.stdout); r.code != exitOK || doc.Summary["noop"] != 1 {
			t.Errorf("apply #%d beside the daemon: exit %d, %v", i+1, r.code, doc.Summary)
		}
	}
}
