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

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
	"github.com/portfwd/portfwd/internal/lab"
)

// The PCP backend lab test proves the backend against miniupnpd's PCP
// server. As in the NAT-PMP lab test, the parent builds the lab and re-runs
// this binary inside the LAN namespace for each phase (the conformance
// suite's subtests run on other goroutines, which lab.Do would leave in the
// root namespace); the phases share a state directory, as successive
// portfwd runs would.
const pcpLabEnv = "PORTFWD_PCP_LAB"

// The mappings the parent checks from the WAN side.
var (
	pcpLabTCP = forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: 41700},
		InternalPort: 41700, Description: forward.Tag("lab-tcp"), Lease: 10 * time.Minute, Enabled: true}
	pcpLabUDP = forward.Mapping{Key: forward.Key{Protocol: forward.UDP, ExternalPort: 41701},
		InternalPort: 41701, Description: forward.Tag("lab-udp"), Lease: 10 * time.Minute, Enabled: true}
	pcpLabOther = forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: 41710},
		InternalPort: 41710, Description: forward.Tag("lab-other"), Lease: 10 * time.Minute, Enabled: true}
)

func TestLabPCPBackend(t *testing.T) {
	if os.Getenv(pcpLabEnv) != "" {
		t.Skip("inside the lab child")
	}
	l := lab.ForTest(t, lab.Options{})
	l.Serve(t, lab.LAN, "tcp", 41700, "lan tcp")
	l.Serve(t, lab.LAN, "udp", 41701, "lan udp")
	dir := t.TempDir()
	pcpLabPhase(t, l, dir, "map")
	pcpLabReaches(t, l, pcpLabTCP, pcpLabUDP)
	pcpLabListed(t, l, l.LANHost, true, pcpLabTCP, pcpLabUDP)
	pcpLabPhase(t, l, dir, "delete")
	pcpLabListed(t, l, l.LANHost, false, pcpLabTCP, pcpLabUDP)
	if reply, err := l.ExchangeFrom(lab.WAN, "tcp", netip.AddrPortFrom(l.RouterWAN, 41700).String(), "ping"); err == nil {
		t.Errorf("tcp/41700 still answers from the WAN after Delete: %q", reply)
	}

	pcpLabPhase(t, l, dir, "before-reboot")
	if err := l.Reboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	pcpLabPhase(t, l, dir, "after-reboot")
}

// TestLabPCPBackendThirdParty: with pcp_allow_thirdparty=yes the backend
// maps a port to the LAN host's second address.
func TestLabPCPBackendThirdParty(t *testing.T) {
	if os.Getenv(pcpLabEnv) != "" {
		t.Skip("inside the lab child")
	}
	l := lab.ForTest(t, lab.Options{PCPThirdParty: true})
	l.Serve(t, lab.LAN, "tcp", 41710, "lan other")
	dir := t.TempDir()
	pcpLabPhase(t, l, dir, "third-party")
	pcpLabReaches(t, l, pcpLabOther)
	pcpLabListed(t, l, l.LANHost2, true, pcpLabOther)
	pcpLabPhase(t, l, dir, "third-party-delete")
	pcpLabListed(t, l, l.LANHost2, false, pcpLabOther)
}

// pcpLabPhase runs TestLabPCPBackendChild inside the LAN namespace.
func pcpLabPhase(t *testing.T, l *lab.Lab, dir, phase string) {
	t.Helper()
	cmd := l.Command(lab.LAN, os.Args[0], "-test.run=^TestLabPCPBackendChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), pcpLabEnv+"="+strings.Join([]string{phase, dir, l.RouterLAN.String(),
		l.LANHost.String(), l.LANHost2.String(), l.RouterWAN.String()}, ","))
	out, err := cmd.CombinedOutput()
	t.Logf("child %s:\n%s", phase, out)
	if err != nil || !strings.Contains(string(out), "--- PASS: TestLabPCPBackendChild") {
		t.Fatalf("lab child %s failed: %v", phase, err)
	}
}

// pcpLabReaches: the forwards work from the internet side; each server
// greets with "lan" and what it is.
func pcpLabReaches(t *testing.T, l *lab.Lab, ms ...forward.Mapping) {
	t.Helper()
	for _, m := range ms {
		addr := netip.AddrPortFrom(l.RouterWAN, m.ExternalPort).String()
		reply, err := l.ExchangeFrom(lab.WAN, string(m.Protocol), addr, "ping")
		if err != nil || !strings.HasPrefix(reply, "lan ") {
			t.Errorf("%s %s from the WAN: %q, %v", m.Protocol, addr, reply, err)
		}
	}
}

// pcpLabListed: miniupnpd's UPnP side (`upnpc -u RootDescURL -l` on the LAN
// host) lists, or no longer lists, the PCP mappings to host.
func pcpLabListed(t *testing.T, l *lab.Lab, host netip.Addr, want bool, ms ...forward.Mapping) {
	t.Helper()
	out, err := l.Mappings(context.Background())
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, m := range ms {
		if strings.Contains(out, natpmpLabUpnpcLine(m, host)) != want {
			t.Errorf("upnpc -l lists %s: %v, want %v:\n%s", m.Key, !want, want, out)
		}
	}
}

// pcpLab is the lab as the PCP child sees it.
type pcpLab = stateLab

func pcpLabChild(t *testing.T) pcpLab {
	return stateLabChild(t, pcpLabEnv, "TestLabPCPBackend")
}

// openPCPLab opens the state in dir and a backend on it.
func openPCPLab(t *testing.T, a pcpLab, dir string) *PCP {
	t.Helper()
	p, err := NewPCP(a.router, a.state(t, dir), PCPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLabPCPBackendChild(t *testing.T) {
	a := pcpLabChild(t)
	p := openPCPLab(t, a, a.dir)
	if p.LocalAddr() != a.self {
		t.Fatalf("LocalAddr = %v, want %v", p.LocalAddr(), a.self)
	}
	phases := map[string]func(*testing.T, *PCP, pcpLab){
		"map": pcpLabMap, "delete": pcpLabDelete,
		"before-reboot": pcpLabBeforeReboot, "after-reboot": pcpLabAfterReboot,
		"third-party": pcpLabThirdParty, "third-party-delete": pcpLabThirdPartyDelete,
	}
	run, ok := phases[a.phase]
	if !ok {
		t.Fatalf("unknown phase %q", a.phase)
	}
	run(t, p, a)
}

func pcpLabMap(t *testing.T, p *PCP, a pcpLab) {
	for _, m := range []forward.Mapping{pcpLabTCP, pcpLabUDP} {
		m.InternalHost = a.self
		got, err := p.Add(testCtx(t), m)
		if err != nil || got.Lease != m.Lease {
			t.Fatalf("Add %v = %+v, %v; want a 10 min lease", m, got, err)
		}
	}
	ms, err := p.List(testCtx(t))
	if err != nil || len(ms) != 2 {
		t.Fatalf("List = %+v, %v; want the two mappings", ms, err)
	}
	if got, err := p.ExternalAddr(testCtx(t)); err != nil || got != a.wan {
		t.Errorf("ExternalAddr = %v, %v; want %v", got, err, a.wan)
	}
	t.Run("Renew", func(t *testing.T) { pcpLabRenew(t, p, a) })
	t.Run("PermanentLease", func(t *testing.T) { pcpLabPermanent(t, p, a) })
	t.Run("ThirdPartyRefused", func(t *testing.T) { pcpLabThirdPartyRefused(t, p, a) })
	t.Run("SameInternalPort", func(t *testing.T) { pcpLabSameInternal(t, p, a) })
	t.Run("Conformance", func(t *testing.T) {
		c := pcpPrimed(t, openPCPLab(t, a, t.TempDir()), a.self, 42703)
		forwardtest.Run(t, forwardtest.Harness{
			New: func(*testing.T) forward.Backend { return c }, Self: a.self, Port: 42700, Lease: time.Hour,
		})
	})
}

// pcpLabRenew: a second Add renews with the recorded nonce (§11.2) and
// keeps the port.
func pcpLabRenew(t *testing.T, p *PCP, a pcpLab) {
	m := pcpLabTCP
	m.InternalHost = a.self
	before, _ := p.record().Find(m.Key)
	got, err := p.Add(testCtx(t), m)
	after, _ := p.record().Find(m.Key)
	if err != nil || got.ExternalPort != m.ExternalPort || after.Nonce != before.Nonce || after.Nonce == "" {
		t.Errorf("renewal = %+v, %v; nonce %q then %q", got, err, before.Nonce, after.Nonce)
	}
}

// pcpLabPermanent: a permanent lease is asked as 604800 s; the log says
// what miniupnpd grants.
func pcpLabPermanent(t *testing.T, p *PCP, a pcpLab) {
	m := pcpLabTCP
	m.ExternalPort, m.InternalPort, m.Lease, m.InternalHost = 41702, 41702, 0, a.self
	got, err := p.Add(testCtx(t), m)
	if err != nil || got.Lease <= 0 {
		t.Fatalf("Add permanent = %+v, %v", got, err)
	}
	t.Logf("a 604800 s request was granted %v (%d s)", got.Lease, got.Lease/time.Second)
	if err := p.Delete(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
}

// pcpLabThirdPartyRefused: without pcp_allow_thirdparty miniupnpd refuses
// THIRD_PARTY, which the user reads as what to do.
func pcpLabThirdPartyRefused(t *testing.T, p *PCP, a pcpLab) {
	m := pcpLabTCP
	m.ExternalPort, m.InternalHost = 41703, a.other
	_, err := p.Add(testCtx(t), m)
	t.Logf("THIRD_PARTY %v: %v", a.other, err)
	if !errors.Is(err, forward.ErrNotAuthorized) || !strings.Contains(err.Error(), "refuses mappings for other hosts") ||
		!strings.Contains(err.Error(), "pcp_allow_thirdparty=yes") || !strings.Contains(err.Error(), "run portfwd on "+a.other.String()) {
		t.Errorf("Add for %v = %v; want ErrNotAuthorized with the way out", a.other, err)
	}
	if _, ok := p.record().Find(m.Key); ok {
		t.Error("the refused mapping is recorded")
	}
}

// pcpLabSameInternal: two rules forwarding different external ports to
// one internal port, each with its own nonce. miniupnpd 2.3.1 keys PCP
// mappings by external port, so both exist, and deleting one leaves the
// other (unlike its NAT-PMP side).
func pcpLabSameInternal(t *testing.T, p *PCP, a pcpLab) {
	first, second := pcpLabTCP, pcpLabTCP
	first.ExternalPort, first.InternalPort, first.InternalHost = 41706, 41706, a.self
	second.ExternalPort, second.InternalPort, second.InternalHost = 41707, 41706, a.self
	second.Description = forward.Tag("second")
	if _, err := p.Add(testCtx(t), first); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Delete(context.Background(), first) })
	if _, err := p.Add(testCtx(t), second); err != nil {
		t.Fatalf("second mapping to internal port 41706: %v", err)
	}
	if err := p.Delete(testCtx(t), second); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("upnpc", "-u", "http://"+a.router.String()+":5000/rootDesc.xml", "-l").CombinedOutput()
	t.Logf("after deleting the second:\n%s", out)
	if err != nil || !strings.Contains(string(out), natpmpLabUpnpcLine(first, a.self)) ||
		strings.Contains(string(out), natpmpLabUpnpcLine(second, a.self)) {
		t.Errorf("want only %v left (%v)", first.Key, err)
	}
	if _, err := p.Add(testCtx(t), first); err != nil {
		t.Errorf("renewing the first after: %v", err)
	}
}

func pcpLabDelete(t *testing.T, p *PCP, _ pcpLab) {
	for _, m := range []forward.Mapping{pcpLabTCP, pcpLabUDP} {
		if err := p.Delete(testCtx(t), m); err != nil {
			t.Fatal(err)
		}
	}
	if ms, err := p.List(testCtx(t)); err != nil || len(ms) != 0 {
		t.Errorf("List after Delete = %+v, %v", ms, err)
	}
}

// pcpLabBeforeReboot maps one port and waits, so the epoch the state
// records is clearly past the one miniupnpd restarts with.
func pcpLabBeforeReboot(t *testing.T, p *PCP, a pcpLab) {
	m := pcpLabTCP
	m.InternalHost = a.self
	if _, err := p.Add(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if ms, err := p.List(testCtx(t)); err != nil || len(ms) != 1 {
		t.Fatalf("List = %+v, %v", ms, err)
	}
	t.Logf("epoch before the reboot: %d", p.record().Epoch)
}

func pcpLabAfterReboot(t *testing.T, p *PCP, a pcpLab) {
	ms, err := p.List(testCtx(t))
	if err != nil || len(ms) != 0 {
		t.Fatalf("List after the reboot = %+v, %v; want nothing", ms, err)
	}
	w := p.Warnings()
	if len(w) != 1 || !strings.HasPrefix(w[0], "the gateway restarted (PCP epoch went from ") ||
		!strings.HasSuffix(w[0], "): every mapping will be re-created") {
		t.Fatalf("Warnings = %q", w)
	}
	t.Log(w[0])
	m := pcpLabTCP
	m.InternalHost = a.self
	if _, err := p.Add(testCtx(t), m); err != nil {
		t.Fatalf("re-creating after the reboot: %v", err)
	}
	if err := p.Delete(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
}

func pcpLabThirdParty(t *testing.T, p *PCP, a pcpLab) {
	m := pcpLabOther
	m.InternalHost = a.other
	got, err := p.Add(testCtx(t), m)
	if err != nil || got.InternalHost != a.other {
		t.Fatalf("Add for %v with pcp_allow_thirdparty=yes = %+v, %v", a.other, got, err)
	}
	if ms, err := p.List(testCtx(t)); err != nil || len(ms) != 1 || ms[0].InternalHost != a.other {
		t.Errorf("List = %+v, %v", ms, err)
	}
	t.Log(fmt.Sprintf("granted %v for %v", got.Lease, got))
}

func pcpLabThirdPartyDelete(t *testing.T, p *PCP, _ pcpLab) {
	if err := p.Delete(testCtx(t), pcpLabOther); err != nil {
		t.Fatal(err)
	}
	if ms, err := p.List(testCtx(t)); err != nil || len(ms) != 0 {
		t.Errorf("List after Delete = %+v, %v", ms, err)
	}
}
