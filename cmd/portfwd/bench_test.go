package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward/probe/probetest"
	"github.com/portfwd/portfwd/internal/lab"
)

// The lab benchmarks time whole processes, as a user would run them, and
// put portfwd beside miniupnpc's upnpc in the same run. Each reports the
// median of its iterations as portfwd-ms and upnpc-ms, and their ratio as
// upnpc/portfwd (how many times faster portfwd is). Run: make bench.

func BenchmarkLabColdApply1Rule(b *testing.B) {
	l := lab.ForTest(b, lab.Options{})
	cfg := rulesFile(b, 1, "")
	host := l.LANHost.String()
	var pf, up []time.Duration
	for i := 0; i < b.N; i++ {
		reboot(b, l)
		pf = append(pf, timed(b, coldCache(b, l.Command(lab.LAN, binary(b), "apply", "--no-probe", cfg))))
		reboot(b, l)
		// What a user would type: upnpc discovers the gateway, then maps.
		up = append(up, timed(b, l.Command(lab.LAN, "upnpc", "-e", "bench", "-a", host, "30000", "30000", "TCP")))
	}
	report(b, pf, up)
}

func BenchmarkLabColdApply50Rules(b *testing.B) {
	l := lab.ForTest(b, lab.Options{})
	cfg := rulesFile(b, 50, "")
	var pf, up []time.Duration
	for i := 0; i < b.N; i++ {
		reboot(b, l)
		pf = append(pf, timed(b, coldCache(b, l.Command(lab.LAN, binary(b), "apply", "--no-probe", cfg))))
		reboot(b, l)
		// 50 upnpc -a in a loop, given the root description URL so they
		// skip upnpc's 2 s discovery: the fastest way upnpc can do it.
		script := fmt.Sprintf(`for p in $(seq 30000 30049); do upnpc -u %s -e bench -a %s $p $p TCP >/dev/null || exit 1; done`,
			l.RootDescURL, l.LANHost)
		up = append(up, timed(b, l.Command(lab.LAN, "sh", "-c", script)))
	}
	report(b, pf, up)
}

// BenchmarkLabSlowRouter50Rules: the cold apply of 50 rules on the slow
// router (miniupnpd as Debian ships it, every AddPortMapping slower as its
// table grows; see slowRouter), beside the same 50 `upnpc -u URL -a` in a
// loop. Both wait on the router for each add, so the ratio is about 1:
// what matters is that the apply finishes, with the default --timeout,
// however long the router takes in all.
func BenchmarkLabSlowRouter50Rules(b *testing.B) {
	l := lab.ForTest(b, slowRouter)
	cfg := rulesFile(b, 50, "")
	script := fmt.Sprintf(`for p in $(seq 30000 30049); do upnpc -u %s -e bench -a %s $p $p TCP >/dev/null || exit 1; done`,
		l.RootDescURL, l.LANHost)
	var pf, up []time.Duration
	for i := 0; i < b.N; i++ {
		reboot(b, l)
		pf = append(pf, timed(b, coldCache(b, l.Command(lab.LAN, binary(b), "apply", "--no-probe", cfg))))
		reboot(b, l)
		up = append(up, timed(b, l.Command(lab.LAN, "sh", "-c", script)))
	}
	report(b, pf, up)
}

func BenchmarkLabNoopApply50Rules(b *testing.B) {
	l := lab.ForTest(b, lab.Options{})
	cfg := rulesFile(b, 50, "")
	// A re-apply on the same machine remembers the gateway: one cache for
	// the first apply and every no-op after it.
	cache := b.TempDir()
	timed(b, withCache(l.Command(lab.LAN, binary(b), "apply", "--no-probe", cfg), cache))
	adds := l.AddPortMappingCount()
	var pf, pfDiscover, up, upURL []time.Duration
	for i := 0; i < b.N; i++ {
		pf = append(pf, timed(b, withCache(l.Command(lab.LAN, binary(b), "apply", "--no-probe", cfg), cache)))
		// The same no-op on a machine that has never seen this gateway.
		pfDiscover = append(pfDiscover, timed(b, coldCache(b, l.Command(lab.LAN, binary(b), "apply", "--no-probe", cfg))))
		up = append(up, timed(b, l.Command(lab.LAN, "upnpc", "-l")))
		upURL = append(upURL, timed(b, l.Command(lab.LAN, "upnpc", "-u", l.RootDescURL, "-l")))
	}
	if n := l.AddPortMappingCount(); n != adds {
		b.Fatalf("no-op apply made %d AddPortMapping calls", n-adds)
	}
	report(b, pf, up)
	b.ReportMetric(ms(median(pfDiscover)), "portfwd-discover-ms")
	b.ReportMetric(ms(median(upURL)), "upnpc-u-ms")
}

// coldCache gives cmd an empty cache directory of its own, so that a cold
// run includes gateway discovery.
func coldCache(b *testing.B, cmd *exec.Cmd) *exec.Cmd { return withCache(cmd, b.TempDir()) }

// withCache makes cmd keep portfwd's cache (os.UserCacheDir) under dir.
func withCache(cmd *exec.Cmd, dir string) *exec.Cmd {
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+dir, "PORTFWD_STATE_DIR="+filepath.Join(dir, "state"))
	return cmd
}

func reboot(b *testing.B, l *lab.Lab) {
	if err := l.Reboot(b.Context()); err != nil {
		b.Fatal(err)
	}
}

func timed(b *testing.B, cmd *exec.Cmd) time.Duration {
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	return d
}

func report(b *testing.B, portfwd, upnpc []time.Duration) {
	p, u := median(portfwd), median(upnpc)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(p), "portfwd-ms")
	b.ReportMetric(ms(u), "upnpc-ms")
	b.ReportMetric(float64(u)/float64(p), "upnpc/portfwd")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkLabCheck20Rules checks 20 Minecraft servers at once, each
// answering after 50 ms (a round trip over the internet), against a probe
// server on the WAN host, and sets the total beside the slowest and the sum
// of checking each rule alone: concurrency makes the total close to the
// slowest, not the sum.
func BenchmarkLabCheck20Rules(b *testing.B) {
	l := lab.ForTest(b, lab.Options{})
	via := probeServer(b, l)
	const rules = 20
	var all strings.Builder
	all.WriteString("rules:\n")
	var singles []string
	for i := 0; i < rules; i++ {
		port := 30000 + i
		ln := l.ListenTCP(b, lab.LAN, fmt.Sprintf(":%d", port))
		go probetest.ServeMinecraftJava(slowListener{ln, 50 * time.Millisecond}, probetest.JavaStatus{Version: "1.21.4", MaxPlayers: 20, Description: "bench"})
		rule := fmt.Sprintf("  - name: mc%d\n    service: minecraft-java\n    external_port: %d\n", i, port)
		all.WriteString(rule)
		singles = append(singles, writeConfig(b, "rules:\n"+rule))
	}
	cfg := writeConfig(b, all.String())
	cache := b.TempDir()
	timed(b, withCache(l.Command(lab.LAN, binary(b), "apply", "--no-probe", cfg), cache))
	var total, slowest, sum []time.Duration
	for i := 0; i < b.N; i++ {
		total = append(total, timed(b, withCache(l.Command(lab.LAN, binary(b), "check", "--via", via, cfg), cache)))
		var worst, all time.Duration
		for _, single := range singles {
			d := timed(b, withCache(l.Command(lab.LAN, binary(b), "check", "--via", via, single), cache))
			worst, all = max(worst, d), all+d
		}
		slowest, sum = append(slowest, worst), append(sum, all)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(median(total)), "check20-ms")
	b.ReportMetric(ms(median(slowest)), "slowest-single-ms")
	b.ReportMetric(ms(median(sum)), "sum-of-singles-ms")
	b.ReportMetric(float64(median(total))/float64(median(slowest)), "check20/slowest")
}

// slowListener delays each connection's first read, as a server across
// the internet would answer later.
type slowListener struct {
	net.Listener
	delay time.Duration
}

func (s slowListener) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &slowConn{Conn: c, delay: s.delay}, nil
}

type slowConn struct {
	net.Conn
	delay time.Duration
	once  sync.Once
}

func (c *slowConn) Read(p []byte) (int, error) {
	c.once.Do(func() { time.Sleep(c.delay) })
	return c.Conn.Read(p)
}

// BenchmarkLabAutoDetect: a cold apply of one rule with backend: auto on a
// router with UPnP off (so it must find PCP or NAT-PMP) beside natpmpc -a;
// the second run on the same machine, the same cache and state, both as a
// timer would run it (the forward is there: a no-op) and after a router
// reboot that lost the records too (the forward is made again, as natpmpc
// -a makes it); for scale, the same second run with the backend named
// (no detection at all) and `portfwd version` (starting the process); and
// how long auto detection takes to give up on a gateway that drops every
// UPnP, NAT-PMP and PCP packet.
func BenchmarkLabAutoDetect(b *testing.B) {
	l := lab.ForTest(b, lab.Options{NoUPnP: true})
	cfg := rulesFile(b, 1, "")
	var auto, warm, warmCreate, named, version, natpmpc, silent []time.Duration
	for i := 0; i < b.N; i++ {
		reboot(b, l)
		cache := b.TempDir()
		auto = append(auto, timed(b, withCache(l.Command(lab.LAN, binary(b), "apply", "--no-probe", cfg), cache)))
		warm = append(warm, timed(b, withCache(l.Command(lab.LAN, binary(b), "apply", "--no-probe", cfg), cache)))
		named = append(named, timed(b, withCache(l.Command(lab.LAN, binary(b), "apply", "--no-probe", "--backend", "pcp", cfg), cache)))
		version = append(version, timed(b, l.Command(lab.LAN, binary(b), "version")))
		// A reboot within seconds of the first run may not show in the
		// protocol's epoch (RFC 6886 §3.6 forgives 2 s): without the
		// records too, the forward is surely made again.
		reboot(b, l)
		if err := os.RemoveAll(filepath.Join(cache, "state")); err != nil {
			b.Fatal(err)
		}
		warmCreate = append(warmCreate, timed(b, withCache(l.Command(lab.LAN, binary(b), "apply", "--no-probe", cfg), cache)))
		reboot(b, l)
		natpmpc = append(natpmpc, timed(b, l.Command(lab.LAN, "natpmpc", "-g", l.RouterLAN.String(), "-a", "30000", "30000", "tcp", "3600")))
	}
	// The router now drops the three protocols without a word: no answer,
	// no ICMP, as a gateway that speaks none of them behind a firewall.
	drop := "add table inet silence; add chain inet silence input { type filter hook input priority -10; }; " +
		"add rule inet silence input udp dport { 1900, 5351 } drop; add rule inet silence input tcp dport 5000 drop"
	if out, err := l.Command(lab.Router, "nft", drop).CombinedOutput(); err != nil {
		b.Fatalf("nft: %v\n%s", err, out)
	}
	for i := 0; i < b.N; i++ {
		cmd := coldCache(b, l.Command(lab.LAN, binary(b), "plan", cfg))
		start := time.Now()
		out, err := cmd.CombinedOutput()
		silent = append(silent, time.Since(start))
		if err == nil || !strings.Contains(string(out), "answered none") {
			b.Fatalf("plan against a silent gateway: %v\n%s", err, out)
		}
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(median(auto)), "auto-apply-ms")
	b.ReportMetric(ms(median(natpmpc)), "natpmpc-ms")
	b.ReportMetric(float64(median(natpmpc))/float64(median(auto)), "natpmpc/auto")
	b.ReportMetric(ms(median(warm)), "auto-second-run-ms")
	b.ReportMetric(float64(median(natpmpc))/float64(median(warm)), "natpmpc/second-run")
	b.ReportMetric(ms(median(warmCreate)), "auto-second-run-after-reboot-ms")
	b.ReportMetric(float64(median(natpmpc))/float64(median(warmCreate)), "natpmpc/second-run-after-reboot")
	b.ReportMetric(ms(median(named)), "backend-pcp-second-run-ms")
	b.ReportMetric(ms(median(version)), "portfwd-version-ms")
	b.ReportMetric(ms(median(silent)), "silent-gateway-ms")
}

// BenchmarkLabIptables200Rules: on the router itself, a first apply of 200
// rules and a no-op re-apply with the iptables backend, beside what a user
// would script instead: a loop of 400 `iptables -A` (a DNAT and a FORWARD
// accept per rule, the same rules portfwd writes), and, for the re-apply,
// the idempotent form of that loop, `iptables -C || iptables -A`. loop/apply
// is how many times faster portfwd's first apply (one iptables-restore) is
// than the -A loop; iptables-restore-ms, the same 400 rules in one
// hand-written iptables-restore --noflush, is the floor it can approach.
func BenchmarkLabIptables200Rules(b *testing.B) {
	l := lab.ForTest(b, lab.Options{Iptables: true})
	const rules = 200
	var s strings.Builder
	s.WriteString("gateway:\n  backend: iptables\nrules:\n")
	for i := 0; i < rules; i++ {
		fmt.Fprintf(&s, "  - name: r%d\n    protocol: tcp\n    external_port: %d\n    internal_host: %s\n", i, 30000+i, l.LANHost)
	}
	cfg := writeConfig(b, s.String())
	pristine, err := l.Command(lab.Router, "iptables-save").Output()
	if err != nil {
		b.Fatal(err)
	}
	restore := func() {
		cmd := l.Command(lab.Router, "iptables-restore")
		cmd.Stdin = strings.NewReader(string(pristine))
		timed(b, cmd)
	}
	// The loop writes each rule as portfwd does: iptables -A with the same
	// matches, on the same built-in chains.
	loop := func(each string) string {
		return fmt.Sprintf(`for p in $(seq 30000 %d); do
  c="portfwd:r$((p-30000))"
  %s
done`, 30000+rules-1, each)
	}
	dnat := `-t nat %[1]s PREROUTING -i wan0 -p tcp -m tcp --dport $p -m comment --comment "$c" -j DNAT --to-destination ` + l.LANHost.String() + `:$p`
	accept := `%[1]s FORWARD -d ` + l.LANHost.String() + `/32 -p tcp -m tcp --dport $p -m conntrack --ctstate DNAT --ctorigdstport $p -m comment --comment "$c" -j ACCEPT`
	appendLoop := loop(fmt.Sprintf("iptables "+accept+" || exit 1; iptables "+dnat+" || exit 1", "-A"))
	checkLoop := loop(fmt.Sprintf("iptables "+accept+" || iptables "+accept+" || exit 1; iptables "+dnat+" || iptables "+dnat+" || exit 1", "-C", "-A"))
	var apply, noop, appends, checks, restores []time.Duration
	for i := 0; i < b.N; i++ {
		restore()
		apply = append(apply, timed(b, withCache(l.Command(lab.Router, binary(b), "apply", "--no-probe", cfg), b.TempDir())))
		noop = append(noop, timed(b, withCache(l.Command(lab.Router, binary(b), "apply", "--no-probe", cfg), b.TempDir())))
		countTagged(b, l, "iptables-save", "portfwd:r", "portfwd", 2*rules)
		restore()
		appends = append(appends, timed(b, l.Command(lab.Router, "sh", "-c", appendLoop)))
		checks = append(checks, timed(b, l.Command(lab.Router, "sh", "-c", checkLoop)))
		restore()
		byHand := l.Command(lab.Router, "iptables-restore", "--noflush")
		byHand.Stdin = strings.NewReader(restoreInput(l, rules))
		restores = append(restores, timed(b, byHand))
		countTagged(b, l, "iptables-save", "portfwd:r", "iptables-restore", 2*rules)
	}
	restore()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(median(apply)), "portfwd-apply-ms")
	b.ReportMetric(ms(median(appends)), "iptables-A-loop-ms")
	b.ReportMetric(float64(median(appends))/float64(median(apply)), "loop/apply")
	b.ReportMetric(ms(median(restores)), "iptables-restore-ms")
	b.ReportMetric(ms(median(noop)), "portfwd-noop-ms")
	b.ReportMetric(ms(median(checks)), "iptables-C-loop-ms")
	b.ReportMetric(float64(median(checks))/float64(median(noop)), "check-loop/noop")
}

// countTagged fails the benchmark unless the router's save (iptables-save,
// ip6tables-save) holds want rules whose tag has marker ("portfwd:r" or,
// with a config's name between, ":r"): the benchmark's rules written by
// who.
func countTagged(b *testing.B, l *lab.Lab, save, marker, who string, want int) {
	b.Helper()
	saved, err := l.SaveTables(b.Context(), save)
	if err != nil {
		b.Fatal(err)
	}
	if n := strings.Count(saved, marker); n != want {
		b.Fatalf("%s left %d tagged rules in %s, want %d", who, n, save, want)
	}
}

// restoreInput is the -A loop's rules as one iptables-restore input.
func restoreInput(l *lab.Lab, rules int) string {
	var in strings.Builder
	in.WriteString("*filter\n")
	for i := range rules {
		fmt.Fprintf(&in, "-A FORWARD -d %s/32 -p tcp -m tcp --dport %d -m conntrack --ctstate DNAT --ctorigdstport %[2]d -m comment --comment portfwd:r%d -j ACCEPT\n",
			l.LANHost, 30000+i, i)
	}
	in.WriteString("COMMIT\n*nat\n")
	for i := range rules {
		fmt.Fprintf(&in, "-A PREROUTING -i wan0 -p tcp -m tcp --dport %d -m comment --comment portfwd:r%d -j DNAT --to-destination %s:%[1]d\n",
			30000+i, i, l.LANHost)
	}
	in.WriteString("COMMIT\n")
	return in.String()
}
