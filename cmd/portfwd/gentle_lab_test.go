package main

import (
	"context"
	"fmt"
	"math"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/internal/lab"
)

// The gentle daemon: on an IGD:1 router, where a listing costs one
// GetGenericPortMappingEntry per mapping, the daemon's load must not grow
// with the rules. Every count here is the router's own — miniupnpd's log
// of SOAP actions and an nftables counter of connections to its HTTP
// port — never the daemon's.

const (
	gentlePort    = 30000 // the first rule's external port; the others follow
	gentleChecks  = 10    // check periods in the steady-state window
	gentleReboots = 3     // router reboots per variant
	gentleBudget  = 30.0  // SOAP requests a minute the steady state may cost
)

// TestLabDaemonIGDv1Gentle runs the daemon with its default timings against
// an IGD:1 miniupnpd with 20 and with 60 rules: each check costs the router
// at most one SOAP request, the steady state including the amortised full
// reconciles stays within gentleBudget a minute, and router reboots are
// still repaired (the time it took is logged; the test only bounds a hang).
func TestLabDaemonIGDv1Gentle(t *testing.T) {
	for _, n := range []int{20, 60} {
		t.Run(fmt.Sprintf("%d-rules", n), func(t *testing.T) {
			l := lab.ForTest(t, lab.Options{IGDv1: true})
			if err := l.CountConnections(t.Context()); err != nil {
				t.Fatal(err)
			}
			l.Serve(t, lab.LAN, "tcp", gentlePort, "first rule")
			d := startDaemon(t, l, writeConfig(t, gentleConfig(n)))
			d.waitLog(t, "reconciled (start)", 1, 60*time.Second)
			if made := strings.Count(d.log.String(), "created r"); made != n {
				t.Fatalf("the start pass created %d forwards, want %d", made, n)
			}
			gentleSteady(t, l)
			gentleRate(t, n, gentlePass(t, l, d))
			gentleRepairs(t, l, d, n)
		})
	}
}

// gentleConfig is n TCP rules on consecutive ports from gentlePort.
func gentleConfig(n int) string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {name: r%02d, protocol: tcp, external_port: %d}\n", i, gentlePort+i)
	}
	return b.String()
}

// gentleSteady counts the requests the router gets over gentleChecks check
// periods with nothing to do, and asserts at most one per check that can
// have begun in the window.
func gentleSteady(t *testing.T, l *lab.Lab) {
	t.Helper()
	time.Sleep(forward.DefaultCheck) // the first check after the start pass
	soap0, conn0, actions0 := l.SOAPRequestCount(), connections(t, l), l.SOAPActions()
	begin := time.Now()
	time.Sleep(gentleChecks * forward.DefaultCheck)
	soap, conns := l.SOAPRequestCount()-soap0, connections(t, l)-conn0
	window := time.Since(begin)
	// Each check starts DefaultCheck after the previous one ended, so no
	// more than this many can have begun in the window.
	checks := int(window/forward.DefaultCheck) + 1
	t.Logf("steady state: %d SOAP requests and %d connections to the router's HTTP port in %v (at most %d checks), %.1f a minute; actions before %s, after %s",
		soap, conns, window.Round(time.Millisecond), checks, float64(soap)/window.Minutes(), actions0, l.SOAPActions())
	if soap > checks {
		t.Errorf("%d SOAP requests in %d check periods: more than one a check", soap, checks)
	}
	if conns > checks {
		t.Errorf("%d connections to the router in %d check periods: more than one a check", conns, checks)
	}
	if soap < 2 {
		t.Errorf("%d SOAP requests in %v: the daemon does not check", soap, window)
	}
}

// gentlePass counts the requests of one full reconcile with nothing to
// change (a SIGHUP reload of the same file), the pass the interval runs;
// a check or two beside it may be counted too.
func gentlePass(t *testing.T, l *lab.Lab, d *daemonProc) int {
	t.Helper()
	before := l.SOAPRequestCount()
	_ = d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitLog(t, "reconciled ("+forward.JobReload.String()+")", 1, 30*time.Second)
	pass := l.SOAPRequestCount() - before
	t.Logf("a full reconcile cost %d SOAP requests", pass)
	return pass
}

// gentleRate is the steady state's requests a minute with the default
// timings and lease: the checks, one request each (gentleSteady), and per
// half lease
// the full reconciles the interval runs, one of them renewing every rule —
// an AddPortMapping each, and a GetSpecificPortMappingEntry each on a
// router slow enough that the listing is more than a few seconds old
// (upnp's snapshotTTL), counted here whether or not the lab needs it.
func gentleRate(t *testing.T, rules int, pass int) {
	t.Helper()
	half := forward.DefaultLease / 2
	passes := math.Ceil(float64(half) / float64(forward.DefaultInterval))
	checks := 60 / forward.DefaultCheck.Seconds()
	passing := (passes*float64(pass) + 2*float64(rules)) / half.Minutes()
	t.Logf("%d rules on IGD:1: %.1f requests a minute = %.1f for the checks (every %v) + %.1f for %v full reconciles every %v with the renewals (%v lease)",
		rules, checks+passing, checks, forward.DefaultCheck, passing, passes, half, forward.DefaultLease)
	if checks+passing > gentleBudget {
		t.Errorf("%d rules cost the router %.1f SOAP requests a minute, want at most %v", rules, checks+passing, gentleBudget)
	}
}

// gentleRepairs reboots the router gentleReboots times, at different
// points of the check period, and logs how long after it was back the
// first and the last rule (the daemon adds them in port order) answered
// from the WAN; then the router must hold all n forwards again. The WAN
// connections are the measure because they cost the router nothing: a
// tight poll of its nftables would compete with miniupnpd for them.
func gentleRepairs(t *testing.T, l *lab.Lab, d *daemonProc, n int) {
	t.Helper()
	last := gentlePort + n - 1
	l.Serve(t, lab.LAN, "tcp", last, "last rule")
	for i := range gentleReboots {
		time.Sleep(500*time.Millisecond + time.Duration(i)*1300*time.Millisecond)
		down := time.Now()
		if err := l.Reboot(t.Context()); err != nil {
			t.Fatal(err)
		}
		up := time.Now()
		first := waitUntil(t, "the first rule answers from the WAN", func() bool { return answers(l, gentlePort) })
		all := waitUntil(t, "the last rule answers from the WAN", func() bool { return answers(l, last) })
		if c, err := l.ForwardCount(t.Context()); err != nil || c != n {
			t.Errorf("after reboot %d the router holds %d forwards (%v), want %d", i+1, c, err, n)
		}
		t.Logf("reboot %d (%v): the first rule answered %v after the router was back, the last one after %v",
			i+1, up.Sub(down).Round(time.Millisecond), first.Sub(up).Round(time.Millisecond), all.Sub(up).Round(time.Millisecond))
	}
	if got := strings.Count(d.log.String(), "reconciled ("+forward.JobMissing.String()+")"); got != gentleReboots {
		t.Errorf("the log shows %d repairs as %q, want %d", got, forward.JobMissing.String(), gentleReboots)
	}
}

// answers reports whether tcp/port answers from the WAN.
func answers(l *lab.Lab, port int) bool {
	_, err := fromWAN(l, "tcp", port)
	return err == nil
}

// waitUntil polls ok until it holds and returns when; it fails t after
// 30 s, a hang detector, not a timing requirement.
func waitUntil(t *testing.T, what string, ok func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Now()
}

// connections is the router's count of connections to its HTTP port.
func connections(t *testing.T, l *lab.Lab) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	n, err := l.ConnectionCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
