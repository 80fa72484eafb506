package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/internal/lab"
)

// BenchmarkLabIptablesPinholes: on the router itself, a first apply of 200
// IPv6 pinholes and a no-op re-apply with the iptables backend, beside
// what a user would script instead: a loop of 200 `ip6tables -A` (the same
// ACCEPT rules portfwd writes, in FORWARD before the router's DROP) and,
// for the re-apply, its idempotent form `ip6tables -C || ip6tables -I`.
// loop/apply is how many times faster portfwd's first apply (one
// ip6tables-restore) is; ip6tables-restore-ms, the same 200 rules in one
// hand-written ip6tables-restore --noflush, is the floor it can approach.
func BenchmarkLabIptablesPinholes(b *testing.B) {
	l := lab.ForTest(b, lab.Options{Iptables: true, IPv6: true})
	const rules = 200
	var s strings.Builder
	s.WriteString("gateway:\n  backend: iptables\nrules:\n")
	for i := range rules {
		fmt.Fprintf(&s, "  - name: r%d\n    protocol: tcp\n    family: ipv6\n    external_port: %d\n    internal_host: %s\n", i, 30000+i, l.LANHost6)
	}
	cfg := writeConfig(b, s.String())
	pristine, err := l.Command(lab.Router, "ip6tables-save").Output()
	if err != nil {
		b.Fatal(err)
	}
	restore := func() {
		cmd := l.Command(lab.Router, "ip6tables-restore")
		cmd.Stdin = strings.NewReader(string(pristine))
		timed(b, cmd)
	}
	accept := `%[1]s FORWARD -d ` + l.LANHost6.String() + `/128 -i wan0 -p tcp -m tcp --dport $p -m comment --comment "portfwd:r$((p-30000))" -j ACCEPT`
	loop := func(each string) string {
		return fmt.Sprintf("for p in $(seq 30000 %d); do\n  %s\ndone", 30000+rules-1, each)
	}
	insertLoop := loop(fmt.Sprintf("ip6tables "+accept+" || exit 1", "-I"))
	checkLoop := loop(fmt.Sprintf("ip6tables "+accept+" || ip6tables "+accept+" || exit 1", "-C", "-I"))
	var apply, noop, inserts, checks, restores []time.Duration
	for i := 0; i < b.N; i++ {
		restore()
		apply = append(apply, timed(b, withCache(l.Command(lab.Router, binary(b), "apply", "--no-probe", cfg), b.TempDir())))
		noop = append(noop, timed(b, withCache(l.Command(lab.Router, binary(b), "apply", "--no-probe", cfg), b.TempDir())))
		countTagged(b, l, "ip6tables-save", ":r", "portfwd", rules)
		restore()
		inserts = append(inserts, timed(b, l.Command(lab.Router, "sh", "-c", insertLoop)))
		checks = append(checks, timed(b, l.Command(lab.Router, "sh", "-c", checkLoop)))
		countTagged(b, l, "ip6tables-save", ":r", "the -I loop", rules)
		restore()
		byHand := l.Command(lab.Router, "ip6tables-restore", "--noflush")
		byHand.Stdin = strings.NewReader(pinholeRestoreInput(l, rules))
		restores = append(restores, timed(b, byHand))
		countTagged(b, l, "ip6tables-save", ":r", "ip6tables-restore", rules)
	}
	restore()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(median(apply)), "portfwd-apply-ms")
	b.ReportMetric(ms(median(inserts)), "ip6tables-I-loop-ms")
	b.ReportMetric(float64(median(inserts))/float64(median(apply)), "loop/apply")
	b.ReportMetric(ms(median(restores)), "ip6tables-restore-ms")
	b.ReportMetric(ms(median(noop)), "portfwd-noop-ms")
	b.ReportMetric(ms(median(checks)), "ip6tables-C-loop-ms")
	b.ReportMetric(float64(median(checks))/float64(median(noop)), "check-loop/noop")
}

// pinholeRestoreInput is the -I loop's rules as one ip6tables-restore
// input.
func pinholeRestoreInput(l *lab.Lab, rules int) string {
	var in strings.Builder
	in.WriteString("*filter\n")
	for i := range rules {
		fmt.Fprintf(&in, "-I FORWARD 1 -d %s/128 -i wan0 -p tcp -m tcp --dport %d -m comment --comment portfwd:r%d -j ACCEPT\n",
			l.LANHost6, 30000+i, i)
	}
	in.WriteString("COMMIT\n")
	return in.String()
}
