package upnp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	natpmp "github.com/jackpal/go-nat-pmp"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
	"github.com/portfwd/portfwd/internal/lab"
)

// The NAT-PMP lab test proves the backend against miniupnpd's NAT-PMP
// server. Like the UPnP lab test, the parent builds the lab and re-runs
// this binary inside the LAN namespace for each phase; the phases share a
// state directory, as successive portfwd runs would.
const natpmpLabEnv = "PORTFWD_NATPMP_LAB"

// The mappings the parent checks from the WAN side.
var (
	natpmpLabTCP = forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: 41600},
		InternalPort: 41600, Description: forward.Tag("lab-tcp"), Lease: 10 * time.Minute, Enabled: true}
	natpmpLabUDP = forward.Mapping{Key: forward.Key{Protocol: forward.UDP, ExternalPort: 41601},
		InternalPort: 41601, Description: forward.Tag("lab-udp"), Lease: 10 * time.Minute, Enabled: true}
)

func TestLabNATPMP(t *testing.T) {
	if os.Getenv(natpmpLabEnv) != "" {
		t.Skip("inside the lab child")
	}
	l := lab.ForTest(t, lab.Options{})
	l.Serve(t, lab.LAN, "tcp", 41600, "lan tcp")
	l.Serve(t, lab.LAN, "udp", 41601, "lan udp")
	dir := t.TempDir()
	natpmpLabPhase(t, l, dir, "map")
	natpmpLabReaches(t, l)
	natpmpLabListed(t, l, true)
	natpmpLabPhase(t, l, dir, "delete")
	natpmpLabListed(t, l, false)

	natpmpLabPhase(t, l, dir, "before-reboot")
	if err := l.Reboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	natpmpLabPhase(t, l, dir, "after-reboot")
}

// natpmpLabPhase runs TestLabNATPMPChild inside the LAN namespace.
func natpmpLabPhase(t *testing.T, l *lab.Lab, dir, phase string) {
	t.Helper()
	cmd := l.Command(lab.LAN, os.Args[0], "-test.run=^TestLabNATPMPChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), natpmpLabEnv+"="+strings.Join([]string{phase, dir, l.RouterLAN.String(),
		l.LANHost.String(), l.LANHost2.String(), l.RouterWAN.String()}, ","))
	out, err := cmd.CombinedOutput()
	t.Logf("child %s:\n%s", phase, out)
	if err != nil || !strings.Contains(string(out), "--- PASS: TestLabNATPMPChild") {
		t.Fatalf("lab child %s failed: %v", phase, err)
	}
}

// natpmpLabReaches: the forwards work from the internet side.
func natpmpLabReaches(t *testing.T, l *lab.Lab) {
	t.Helper()
	for _, m := range []forward.Mapping{natpmpLabTCP, natpmpLabUDP} {
		addr := netip.AddrPortFrom(l.RouterWAN, m.ExternalPort).String()
		reply, err := l.ExchangeFrom(lab.WAN, string(m.Protocol), addr, "ping")
		if err != nil || !strings.HasPrefix(reply, "lan "+string(m.Protocol)) {
			t.Errorf("%s %s from the WAN: %q, %v", m.Protocol, addr, reply, err)
		}
	}
}

// natpmpLabListed: miniupnpd's UPnP side lists (or no longer lists) the
// NAT-PMP mappings.
func natpmpLabListed(t *testing.T, l *lab.Lab, want bool) {
	t.Helper()
	out, err := l.Mappings(context.Background())
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, m := range []forward.Mapping{natpmpLabTCP, natpmpLabUDP} {
		if strings.Contains(out, natpmpLabUpnpcLine(m, l.LANHost)) != want {
			t.Errorf("upnpc -l lists %s: %v, want %v:\n%s", m.Key, !want, want, out)
		}
	}
}

// natpmpLabUpnpcLine is how `upnpc -l` shows m: "TCP 41600->192.168.77.10:41600".
func natpmpLabUpnpcLine(m forward.Mapping, self netip.Addr) string {
	return fmt.Sprintf("%s %d->%s", strings.ToUpper(string(m.Protocol)), m.ExternalPort, netip.AddrPortFrom(self, m.InternalPort))
}

// natpmpLab is the lab as the NAT-PMP child sees it.
type natpmpLab = stateLab

func natpmpLabChild(t *testing.T) natpmpLab {
	return stateLabChild(t, natpmpLabEnv, "TestLabNATPMP")
}

// openNATPMPLab opens the state in dir and a backend on it.
func openNATPMPLab(t *testing.T, a natpmpLab, dir string) *NATPMP {
	t.Helper()
	n, err := NewNATPMP(a.router, a.state(t, dir), NATPMPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestLabNATPMPChild(t *testing.T) {
	a := natpmpLabChild(t)
	n := openNATPMPLab(t, a, a.dir)
	if n.LocalAddr() != a.self {
		t.Fatalf("LocalAddr = %v, want %v", n.LocalAddr(), a.self)
	}
	switch a.phase {
	case "map":
		natpmpLabMap(t, n, a)
	case "delete":
		natpmpLabDelete(t, n)
	case "before-reboot":
		natpmpLabBeforeReboot(t, n, a)
	case "after-reboot":
		natpmpLabAfterReboot(t, n, a)
	default:
		t.Fatalf("unknown phase %q", a.phase)
	}
}

func natpmpLabMap(t *testing.T, n *NATPMP, a natpmpLab) {
	if got, err := n.ExternalAddr(testCtx(t)); err != nil || got != a.wan {
		t.Fatalf("ExternalAddr = %v, %v; want %v", got, err, a.wan)
	}
	for _, m := range []forward.Mapping{natpmpLabTCP, natpmpLabUDP} {
		m.InternalHost = a.self
		got, err := n.Add(testCtx(t), m)
		if err != nil || got.Lease != m.Lease {
			t.Fatalf("Add %v = %+v, %v; want a 10 min lease", m, got, err)
		}
	}
	ms, err := n.List(testCtx(t))
	if err != nil || len(ms) != 2 {
		t.Fatalf("List = %+v, %v; want the two mappings", ms, err)
	}
	t.Run("PermanentLease", func(t *testing.T) { natpmpLabPermanent(t, n, a) })
	t.Run("OtherHostRefused", func(t *testing.T) { natpmpLabOtherHost(t, n, a) })
	t.Run("PortHeldByOtherHost", func(t *testing.T) { natpmpLabHeld(t, n, a) })
	t.Run("SameInternalPort", func(t *testing.T) { natpmpLabSameInternal(t, n, a) })
	t.Run("Conformance", func(t *testing.T) {
		c := openNATPMPLab(t, a, t.TempDir())
		forwardtest.Run(t, forwardtest.Harness{
			New: func(*testing.T) forward.Backend { return c }, Self: a.self, Port: 42600, Lease: time.Hour,
		})
	})
}

// natpmpLabPermanent: a permanent lease is asked as 604800 s; the log says
// what miniupnpd grants.
func natpmpLabPermanent(t *testing.T, n *NATPMP, a natpmpLab) {
	m := natpmpLabTCP
	m.ExternalPort, m.InternalPort, m.Lease, m.InternalHost = 41602, 41602, 0, a.self
	got, err := n.Add(testCtx(t), m)
	if err != nil || got.Lease <= 0 {
		t.Fatalf("Add permanent = %+v, %v", got, err)
	}
	t.Logf("a 604800 s request was granted %v (%d s)", got.Lease, got.Lease/time.Second)
	if err := n.Delete(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
}

// natpmpLabOtherHost: NAT-PMP maps only for the asking host; portfwd
// refuses before asking.
func natpmpLabOtherHost(t *testing.T, n *NATPMP, a natpmpLab) {
	m := natpmpLabTCP
	m.ExternalPort, m.InternalHost = 41603, a.other
	_, err := n.Add(testCtx(t), m)
	if !errors.Is(err, forward.ErrNotAuthorized) {
		t.Fatalf("Add for %v = %v; want ErrNotAuthorized", a.other, err)
	}
	t.Log(err)
}

// natpmpLabHeld: another LAN host (the second address) holds the external
// port through NAT-PMP; miniupnpd then grants another port, which portfwd
// deletes again and reports as a conflict.
func natpmpLabHeld(t *testing.T, n *NATPMP, a natpmpLab) {
	other := natpmp.NewClientWithLocalAndTimeout(a.router.AsSlice(), a.other.AsSlice(), time.Second)
	res, err := other.AddPortMapping("tcp", 41604, 41604, 600)
	if err != nil || res.MappedExternalPort != 41604 {
		t.Fatalf("mapping from %v: %+v, %v", a.other, res, err)
	}
	t.Cleanup(func() { other.AddPortMapping("tcp", 41604, 41604, 0) })
	m := natpmpLabTCP
	m.ExternalPort, m.InternalPort, m.InternalHost = 41604, 41604, a.self
	_, err = n.Add(testCtx(t), m)
	var ce *forward.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("Add over %v's port = %v; want a conflict", a.other, err)
	}
	t.Log(err)
	if res, err := other.AddPortMapping("tcp", 41604, 41604, 600); err != nil || res.MappedExternalPort != 41604 {
		t.Errorf("the other host's mapping changed: %+v, %v", res, err)
	}
}

// natpmpLabSameInternal: two rules forwarding different external ports to
// one internal port. miniupnpd maps both, and deletes both when asked to
// delete one; the first must survive the second Add and the second Delete.
func natpmpLabSameInternal(t *testing.T, n *NATPMP, a natpmpLab) {
	first, second := natpmpLabTCP, natpmpLabTCP
	first.ExternalPort, first.InternalPort, first.InternalHost = 41606, 41606, a.self
	second.ExternalPort, second.InternalPort, second.InternalHost = 41607, 41606, a.self
	second.Description = forward.Tag("second")
	if _, err := n.Add(testCtx(t), first); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Delete(context.Background(), first) })
	if _, err := n.Add(testCtx(t), second); err != nil {
		t.Fatalf("second mapping to internal port 41606: %v", err)
	}
	if err := n.Delete(testCtx(t), second); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("upnpc", "-u", "http://"+a.router.String()+":5000/rootDesc.xml", "-l").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), natpmpLabUpnpcLine(first, a.self)) {
		t.Errorf("the first mapping is gone (%v):\n%s", err, out)
	}
}

func natpmpLabDelete(t *testing.T, n *NATPMP) {
	for _, m := range []forward.Mapping{natpmpLabTCP, natpmpLabUDP} {
		if err := n.Delete(testCtx(t), m); err != nil {
			t.Fatal(err)
		}
	}
	if ms, err := n.List(testCtx(t)); err != nil || len(ms) != 0 {
		t.Errorf("List after Delete = %+v, %v", ms, err)
	}
}

// natpmpLabBeforeReboot maps one port and waits, so the epoch the state
// records is clearly past the one miniupnpd restarts with.
func natpmpLabBeforeReboot(t *testing.T, n *NATPMP, a natpmpLab) {
	m := natpmpLabTCP
	m.InternalHost = a.self
	if _, err := n.Add(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if ms, err := n.List(testCtx(t)); err != nil || len(ms) != 1 {
		t.Fatalf("List = %+v, %v", ms, err)
	}
	t.Logf("epoch before the reboot: %d", n.state.Gateway("natpmp", a.router).Epoch)
}

func natpmpLabAfterReboot(t *testing.T, n *NATPMP, a natpmpLab) {
	ms, err := n.List(testCtx(t))
	if err != nil || len(ms) != 0 {
		t.Fatalf("List after the reboot = %+v, %v; want nothing", ms, err)
	}
	w := n.Warnings()
	if len(w) != 1 || !strings.HasPrefix(w[0], "the gateway restarted (NAT-PMP epoch went from ") {
		t.Fatalf("Warnings = %q", w)
	}
	t.Log(w[0])
	m := natpmpLabTCP
	m.InternalHost = a.self
	if _, err := n.Add(testCtx(t), m); err != nil {
		t.Fatalf("re-creating after the reboot: %v", err)
	}
	if err := n.Delete(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
}
