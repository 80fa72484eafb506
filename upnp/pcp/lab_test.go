package pcp

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/internal/lab"
)

// The lab tests prove both protocols against miniupnpd 2.3.1's NAT-PMP and
// PCP servers (LAB.md). Each parent test builds a lab and re-runs itself
// on the LAN host once per phase (lab.RunChild): the conformance suite's
// subtests run on goroutines of their own, which lab.Do would leave in the
// root namespace. The phases share a records directory, as successive
// portfwd runs share the state directory. Between two phases the parent
// checks from the WAN host, and in the router's own list of mappings, what
// the phase left on the router, and reboots the router where a phase needs
// it. Where miniupnpd treats the two protocols alike, one test runs over
// both (labProtocol); the tests on the wire are PCP's.
//
// forwardtest.RunRecords does not fit the lab: its harness restarts the
// gateway, and moves its clock, in the middle of one test, where the
// parent can reboot miniupnpd only between two children and its epoch
// follows the real clock. What of it fits is proven here on the router:
// records that outlive a run (the delete phase), a restart noticed,
// warned once and forgotten (after-reboot), another host's mapping never
// listed nor deleted and a moved port a conflict (portHeld), the lease
// granted being what counts (permanentLease, leaseRunsOut), the port
// granted for external_port: any (anyPort), other hosts (otherHostRefused,
// TestLabPCPThirdParty).

// labProtocol is one protocol as the lab tests drive it, and what tells it
// from the other where it differs.
type labProtocol struct {
	name, title string // as Properties().Name and the restart warning spell it
	open        opener
	// otherHostSays is what a refused mapping for another host says,
	// besides where to run portfwd instead.
	otherHostSays []string
	// nonces: the gateway knows a mapping by its nonce (PCP, RFC 6887
	// §11.1), which the records keep.
	nonces bool
	// leaseFloor is the shortest lease miniupnpd 2.3.1 grants: PCP's
	// min_lifetime, 120 s unless configured; NAT-PMP grants what is asked.
	leaseFloor time.Duration
	// sameInternal proves two rules on one internal port, which miniupnpd
	// handles differently in each protocol.
	sameInternal func(*labRun, *testing.T)
}

var (
	labNATPMP = labProtocol{name: "natpmp", title: "NAT-PMP", open: OpenNATPMP,
		otherHostSays: []string{"NAT-PMP only maps ports to the host that asks"},
		sameInternal:  (*labRun).natpmpSameInternal}
	labPCP = labProtocol{name: "pcp", title: "PCP", open: OpenPCP, nonces: true, leaseFloor: 2 * time.Minute,
		otherHostSays: []string{"refuses mappings for other hosts", "pcp_allow_thirdparty=yes"},
		sameInternal:  (*labRun).pcpSameInternal}
)

// labLease is the lease of the mappings the phases make.
const labLease = 10 * time.Minute

// labMappings are the TCP and UDP mappings to host that the phases make
// and the parent checks from the WAN host.
func labMappings(host netip.Addr) []forward.Mapping {
	return []forward.Mapping{labMapping(forward.TCP, 41600, host, labLease), labMapping(forward.UDP, 41601, host, labLease)}
}

// labMapping forwards port to the same port of host.
func labMapping(p forward.Protocol, port uint16, host netip.Addr, lease time.Duration) forward.Mapping {
	m := mapping(p, port, lease)
	m.InternalHost = host
	return m
}

// TestLabNATPMP proves the NAT-PMP backend on miniupnpd (see runBackendLab).
func TestLabNATPMP(t *testing.T) { runBackendLab(t, labNATPMP) }

// TestLabPCP proves the PCP backend on miniupnpd (see runBackendLab).
func TestLabPCP(t *testing.T) { runBackendLab(t, labPCP) }

// runBackendLab: p's backend maps TCP and UDP, which the WAN host then
// reaches; the next run lists them from the records and deletes them,
// after which nothing reaches and the router holds nothing; after a router
// reboot between two runs, the second notices the restart, warns once, and
// every mapping is made again and reaches.
func runBackendLab(t *testing.T, p labProtocol) {
	if c, ok := lab.ChildOf(t); ok {
		r := newLabRun(t, p, c)
		labPhase(t, c.Phase, map[string]func(*testing.T){"map": r.mapPhase, "delete": r.deletePhase,
			"before-reboot": r.beforeReboot, "after-reboot": r.afterReboot})
		return
	}
	t.Parallel()
	l := lab.ForTest(t, lab.Options{})
	l.Serve(t, lab.LAN, "tcp", 41600, "lan tcp")
	l.Serve(t, lab.LAN, "udp", 41601, "lan udp")
	ms := labMappings(l.LANHost)
	labPhases(t, l, []labStep{{"map", true}, {"delete", false}, {"before-reboot", true}}, ms...)
	if err := l.Reboot(t.Context()); err != nil {
		t.Fatal(err)
	}
	labForwards(t, l, false, ms...) // the reboot lost them
	labPhases(t, l, []labStep{{"after-reboot", true}}, ms...)
}

// TestLabPCPThirdParty: with pcp_allow_thirdparty=yes the PCP backend maps
// a port to the LAN host's second address (THIRD_PARTY, RFC 6887 §13.1),
// which the WAN host then reaches, and the conformance suite's mapping for
// another host is granted; the next run deletes it.
func TestLabPCPThirdParty(t *testing.T) {
	if c, ok := lab.ChildOf(t); ok {
		r := newLabRun(t, labPCP, c)
		labPhase(t, c.Phase, map[string]func(*testing.T){"map": r.thirdPartyMap, "delete": r.thirdPartyDelete})
		return
	}
	t.Parallel()
	l := lab.ForTest(t, lab.Options{PCPThirdParty: true})
	l.Serve(t, lab.LAN, "tcp", labThirdPartyPort, "lan other")
	labPhases(t, l, []labStep{{"map", true}, {"delete", false}}, labThirdParty(l.LANHost2))
}

// labThirdPartyPort is the port TestLabPCPThirdParty maps to the second
// address.
const labThirdPartyPort = 41710

// labThirdParty is the mapping to the LAN host's second address.
func labThirdParty(other netip.Addr) forward.Mapping {
	return labMapping(forward.TCP, labThirdPartyPort, other, labLease)
}

// labStep is one phase the parent runs in a child on the LAN host, and
// whether the mappings forward after it.
type labStep struct {
	phase    string
	forwards bool
}

// labPhases runs each step's phase on the LAN host, then checks the
// mappings ms forward, or not, as the step says.
func labPhases(t *testing.T, l *lab.Lab, steps []labStep, ms ...forward.Mapping) {
	t.Helper()
	for _, s := range steps {
		l.RunChild(t, lab.LAN, s.phase, lab.ChildOptions{})
		labForwards(t, l, s.forwards, ms...)
	}
}

// labPhase runs the child's part for phase.
func labPhase(t *testing.T, phase string, phases map[string]func(*testing.T)) {
	t.Helper()
	run, ok := phases[phase]
	if !ok {
		t.Fatalf("no lab phase %q", phase)
	}
	run(t)
}

// labForwards checks each mapping on the router, from outside: the WAN
// host reaches the LAN host's server through it (every server there
// greets with "lan "), and the router's own list of mappings (UPnP's,
// which shows NAT-PMP's and PCP's too) holds it — or, unless want,
// neither.
func labForwards(t *testing.T, l *lab.Lab, want bool, ms ...forward.Mapping) {
	t.Helper()
	listing, err := l.Mappings(t.Context())
	if err != nil {
		t.Fatalf("%v\n%s", err, listing)
	}
	for _, m := range ms {
		addr := netip.AddrPortFrom(l.RouterWAN, m.ExternalPort).String()
		reply, err := l.ExchangeFrom(lab.WAN, string(m.Protocol), addr, "ping")
		reaches := err == nil && strings.HasPrefix(reply, "lan ")
		if reaches != want || holds(listing, m) != want {
			t.Errorf("%v to %v: from the WAN %q, %v; the router lists it: %v; want both %v\n%s",
				m.Key, m.InternalHost, reply, err, holds(listing, m), want, listing)
		}
	}
}

// holds reports whether the listing of `upnpc -l` shows m, as in
// "TCP 41600->192.168.77.10:41600 'NAT-PMP 41600 tcp' …".
func holds(listing string, m forward.Mapping) bool {
	return strings.Contains(listing, fmt.Sprintf("%s %d->%s ", strings.ToUpper(string(m.Protocol)), m.ExternalPort,
		netip.AddrPortFrom(m.InternalHost, m.InternalPort)))
}
