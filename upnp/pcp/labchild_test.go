package pcp

import (
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
	"github.com/portfwd/portfwd/internal/lab"
)

// labRun is one phase of a backend lab test on the LAN host: the protocol,
// the lab as the child sees it, and a backend on the records the phases
// share, opened as a run of portfwd opens it.
type labRun struct {
	labProtocol
	c *lab.Child
	b *Backend
}

// newLabRun opens p's backend on the records in c.Dir.
func newLabRun(t *testing.T, p labProtocol, c *lab.Child) *labRun {
	r := &labRun{labProtocol: p, c: c}
	r.b = r.reopen(t, c.Dir)
	return r
}

// reopen opens a backend on the router with the records in dir, as the
// next run of portfwd does, and checks it asks from the LAN host.
func (r *labRun) reopen(t *testing.T, dir string) *Backend {
	t.Helper()
	rec, err := OpenRecords(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.open(testCtx(t), r.c.RouterLAN, rec, Options{})
	if err != nil {
		t.Fatalf("opening %s: %v", r.title, err)
	}
	if b.LocalAddr() != r.c.LANHost {
		t.Fatalf("LocalAddr = %v, want %v", b.LocalAddr(), r.c.LANHost)
	}
	return b
}

// mapping forwards port to the same port of the LAN host.
func (r *labRun) mapping(p forward.Protocol, port uint16, lease time.Duration) forward.Mapping {
	return labMapping(p, port, r.c.LANHost, lease)
}

// record is the record on k in the file in dir.
func (r *labRun) record(t *testing.T, dir string, k forward.Key) (entry, bool) {
	t.Helper()
	rec, err := OpenRecords(dir)
	if err != nil {
		t.Fatal(err)
	}
	return rec.gateway(r.name, r.c.RouterLAN).find(k)
}

// list is b.List, which must succeed.
func (r *labRun) list(t *testing.T, b *Backend) []forward.Mapping {
	t.Helper()
	ms, err := b.List(testCtx(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return ms
}

// mustDelete deletes m on b, or ends the test.
func (r *labRun) mustDelete(t *testing.T, b *Backend, m forward.Mapping) {
	t.Helper()
	if err := b.Delete(testCtx(t), m); err != nil {
		t.Fatalf("Delete %v: %v", m.Key, err)
	}
}

// routerHolds reports whether the router's own list of mappings, through
// UPnP (upnpc on the LAN host), holds m.
func (r *labRun) routerHolds(t *testing.T, m forward.Mapping) bool {
	t.Helper()
	out, err := exec.CommandContext(testCtx(t), "upnpc", "-u", r.c.RootDescURL, "-l").CombinedOutput()
	if err != nil {
		t.Fatalf("upnpc -l: %v\n%s", err, out)
	}
	return holds(string(out), m)
}

// mapPhase: the two mappings are granted as asked and listed, and the
// backend reports the router's WAN address (the parent then checks the
// mappings from the WAN); each subtest then proves one rule of the backend
// on the router, on records of its own.
func (r *labRun) mapPhase(t *testing.T) {
	for _, m := range labMappings(r.c.LANHost) {
		if got := forwardtest.MustAdd(t, r.b, m); got.Key != m.Key || got.InternalHost != m.InternalHost || got.Lease != m.Lease {
			t.Fatalf("Add %v = %+v; want it granted as asked", m, got)
		}
	}
	if ms := r.list(t, r.b); len(ms) != 2 {
		t.Fatalf("List = %+v; want the two mappings", ms)
	}
	if p := r.b.Properties(); p.Name != r.name || !p.ListsFromState || p.PermanentLeases {
		t.Errorf("Properties = %+v; want %s, listing from its records, no permanent leases", p, r.name)
	}
	if got, err := r.b.ExternalAddr(testCtx(t)); err != nil || got != r.c.RouterWAN {
		t.Errorf("ExternalAddr = %v, %v; want %v", got, err, r.c.RouterWAN)
	}
	t.Run("Renew", r.renew)
	t.Run("PermanentLease", r.permanentLease)
	t.Run("OtherHostRefused", r.otherHostRefused)
	t.Run("PortHeldByAnotherHost", r.portHeld)
	t.Run("AnyPortKeepsGrant", r.anyPort)
	t.Run("SameInternalPort", func(t *testing.T) { r.sameInternal(r, t) })
	t.Run("LeaseRunsOut", r.leaseRunsOut)
	t.Run("Conformance", r.conformance)
}

// renew: a second Add of a mapping renews it where it is, for a new
// lifetime; PCP repeats the recorded nonce (RFC 6887 §11.2).
func (r *labRun) renew(t *testing.T) {
	m := labMappings(r.c.LANHost)[0]
	before, _ := r.record(t, r.c.Dir, m.Key)
	got := forwardtest.MustAdd(t, r.b, m)
	after, ok := r.record(t, r.c.Dir, m.Key)
	if !ok || got.Key != m.Key || got.Lease != m.Lease || after.GrantedPort != m.ExternalPort || !after.Expires.After(before.Expires) {
		t.Errorf("renewal = %+v, recorded %+v then %+v; want the same port for a new lifetime", got, before, after)
	}
	if after.Nonce != before.Nonce || (after.Nonce != "") != r.nonces {
		t.Errorf("nonce %q, renewed with %q; want the recorded one kept (PCP) or none (NAT-PMP)", before.Nonce, after.Nonce)
	}
}

// permanentLease: a permanent lease is asked as a week, never as 0 (a
// delete); what the router grants is what Add returns.
func (r *labRun) permanentLease(t *testing.T) {
	b := r.reopen(t, t.TempDir())
	m := r.mapping(forward.TCP, 41602, 0)
	got := forwardtest.MustAdd(t, b, m)
	t.Logf("a permanent lease, asked as %d s, was granted %v", seconds(forward.PermanentLeaseCap), got.Lease)
	if got.Lease <= 0 || got.Lease > forward.PermanentLeaseCap || !r.routerHolds(t, m) {
		t.Errorf("Add with a permanent lease = %+v; want a lease of at most a week, on the router", got)
	}
	r.mustDelete(t, b, m)
}

// otherHostRefused: without pcp_allow_thirdparty miniupnpd maps for no
// other host; NAT-PMP cannot ask at all (RFC 6886 §3.3). Either way the
// user reads what to do, and nothing is recorded or mapped.
func (r *labRun) otherHostRefused(t *testing.T) {
	dir := t.TempDir()
	m := r.mapping(forward.TCP, 41603, time.Hour)
	m.InternalHost = r.c.LANHost2
	_, err := r.reopen(t, dir).Add(testCtx(t), m)
	t.Logf("Add for %v: %v", m.InternalHost, err)
	if !errors.Is(err, forward.ErrNotAuthorized) {
		t.Errorf("Add for %v = %v; want ErrNotAuthorized", m.InternalHost, err)
	}
	for _, says := range append(r.otherHostSays, "run portfwd on "+m.InternalHost.String()) {
		if err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("Add for %v = %v; want it to say %q", m.InternalHost, err, says)
		}
	}
	if _, ok := r.record(t, dir, m.Key); ok || r.routerHolds(t, m) {
		t.Error("the refused mapping is recorded or on the router")
	}
}

// portHeld: another LAN host holds the port. Its mapping is not listed,
// a Delete on its key leaves it, and an Add on the port is a conflict:
// miniupnpd grants the next port instead, which the backend gives back.
func (r *labRun) portHeld(t *testing.T) {
	dir := t.TempDir()
	b := r.reopen(t, dir)
	foreign := r.foreign(t, forward.TCP, 41604)
	if ms := r.list(t, b); len(ms) != 0 {
		t.Errorf("List = %+v; want nothing: another host's mapping is not portfwd's", ms)
	}
	if err := b.Delete(testCtx(t), foreign); err != nil || !r.routerHolds(t, foreign) {
		t.Errorf("Delete of another host's mapping = %v; want nil, and the mapping left", err)
	}
	m := r.mapping(forward.TCP, 41604, time.Hour)
	_, err := b.Add(testCtx(t), m)
	t.Logf("Add over %v's port: %v", foreign.InternalHost, err)
	var ce *forward.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, forward.ErrConflict) {
		t.Fatalf("Add over %v's port = %v; want a *forward.ConflictError", foreign.InternalHost, err)
	}
	moved := m
	moved.ExternalPort++
	if !r.routerHolds(t, foreign) || r.routerHolds(t, moved) {
		t.Errorf("on the router: %v's mapping kept %v, the grant on %v given back %v; want both",
			foreign.InternalHost, r.routerHolds(t, foreign), moved.Key, !r.routerHolds(t, moved))
	}
	if ms := r.list(t, b); len(ms) != 0 {
		t.Errorf("List = %+v; want nothing recorded", ms)
	}
}

// anyPort: with external_port: any, the port another host holds makes
// miniupnpd grant the next, which is kept, listed and deleted under the
// port granted.
func (r *labRun) anyPort(t *testing.T) {
	b := r.reopen(t, t.TempDir())
	foreign := r.foreign(t, forward.UDP, 41608)
	m := r.mapping(forward.UDP, 41608, time.Hour)
	m.AnyExternal = true
	got := forwardtest.MustAdd(t, b, m)
	if got.ExternalPort == m.ExternalPort || !r.routerHolds(t, got) || !r.routerHolds(t, foreign) {
		t.Fatalf("Add with any port = %+v; want another port, held, beside %v's", got, foreign.InternalHost)
	}
	if ms := r.list(t, b); len(ms) != 1 || ms[0].Key != got.Key || ms[0].AnyExternal {
		t.Errorf("List = %+v; want the mapping on %v, as observed", ms, got.Key)
	}
	r.mustDelete(t, b, got)
	if r.routerHolds(t, got) {
		t.Errorf("%v is still on the router after Delete", got.Key)
	}
}

// foreign maps port to the same port of the LAN host's second address, as
// another device on the LAN does: a NAT-PMP request from that address. It
// is deleted when t ends.
func (r *labRun) foreign(t *testing.T, p forward.Protocol, port uint16) forward.Mapping {
	t.Helper()
	m := labMapping(p, port, r.c.LANHost2, time.Hour)
	if got := r.natpmpFrom(t, m, 3600); got != port {
		t.Fatalf("mapping %v from %v: granted port %d", m.Key, m.InternalHost, got)
	}
	t.Cleanup(func() { r.natpmpFrom(t, m, 0) })
	return m
}

// natpmpFrom sends the NAT-PMP mapping request for m (RFC 6886 §3.3) from
// m's internal host, and returns the external port granted.
func (r *labRun) natpmpFrom(t *testing.T, m forward.Mapping, lifetime uint32) uint16 {
	t.Helper()
	conn, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(m.InternalHost, 0)),
		net.UDPAddrFromAddrPort(netip.AddrPortFrom(r.c.RouterLAN, serverPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	op, _ := natpmpOp(m.Protocol)
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, maxDatagram)
	n, err := conn.Write(natpmpMapRequest(op, m.InternalPort, m.ExternalPort, lifetime))
	if err == nil {
		n, err = conn.Read(buf)
	}
	if err != nil {
		t.Fatalf("NAT-PMP from %v: %v", m.InternalHost, err)
	}
	resp, err := decodeNATPMP(buf[:n])
	if err != nil || resp.result != NATPMPSuccess {
		t.Fatalf("NAT-PMP from %v: %+v, %v", m.InternalHost, resp, err)
	}
	return resp.mapped
}

// conformance is forwardtest.Run on the router, a backend on fresh records
// for each subtest; another device's mapping is a NAT-PMP request from the
// LAN host's second address (foreign).
func (r *labRun) conformance(t *testing.T) {
	forwardtest.Run(t, forwardtest.Harness{
		New:  func(t *testing.T) forward.Backend { return r.primed(t, r.reopen(t, t.TempDir())) },
		Self: r.c.LANHost, Other: r.c.LANHost2, Port: 42600, Lease: time.Hour,
		AddForeign: func(t *testing.T, m forward.Mapping) { r.foreign(t, m.Protocol, m.ExternalPort) },
	})
}

// primed returns b once a mapping has been made and deleted, so that PCP
// knows the external address (RFC 6887 §11.1), as after any run that
// mapped.
func (r *labRun) primed(t *testing.T, b *Backend) *Backend {
	t.Helper()
	m := r.mapping(forward.TCP, 42603, time.Minute)
	forwardtest.MustAdd(t, b, m)
	r.mustDelete(t, b, m)
	return b
}

// deletePhase: the next run lists the mappings from the records, with the
// lease left, and deletes them (the parent checks they are gone from the
// router); the run after lists nothing.
func (r *labRun) deletePhase(t *testing.T) {
	want := labMappings(r.c.LANHost)
	ms := r.list(t, r.b)
	if len(ms) != len(want) {
		t.Fatalf("List in the next run = %+v; want %v", ms, want)
	}
	for i, m := range ms {
		w := want[i]
		w.Lease = m.Lease
		if m != w || m.Lease > labLease || m.Lease < labLease-time.Minute {
			t.Errorf("List has %+v; want %+v with at most %v left", m, w, labLease)
		}
		r.mustDelete(t, r.b, m)
	}
	if ms := r.list(t, r.reopen(t, r.c.Dir)); len(ms) != 0 {
		t.Errorf("List in the run after = %+v; want nothing", ms)
	}
}

// beforeReboot maps both again, and lets the router's epoch grow past the
// slack both restart rules allow (RFC 6886 §3.6: 2 s; RFC 6887 §8.5: 1 s
// back), so that the reboot shows.
func (r *labRun) beforeReboot(t *testing.T) {
	for _, m := range labMappings(r.c.LANHost) {
		forwardtest.MustAdd(t, r.b, m)
	}
	a := r.announce(t)
	for ; a.epoch < 3; a = r.announce(t) {
		time.Sleep(500 * time.Millisecond)
	}
	if ms := r.list(t, r.b); len(ms) != 2 {
		t.Fatalf("List = %+v; want the two mappings", ms)
	}
	t.Logf("%s epoch before the reboot: %d", r.title, a.epoch)
}

// announce is the backend's announce, straight to the router.
func (r *labRun) announce(t *testing.T) answer {
	t.Helper()
	a, err := r.b.m.announce(testCtx(t))
	if err != nil {
		t.Fatalf("announce: %v", err)
	}
	return a
}

// afterReboot: the first run after the reboot notices it from the epoch,
// says so once, and lists nothing, nor does the run after it; every
// mapping is then made again (the parent checks they reach).
func (r *labRun) afterReboot(t *testing.T) {
	if ms := r.list(t, r.b); len(ms) != 0 {
		t.Fatalf("List after the reboot = %+v; want nothing", ms)
	}
	w := r.b.Warnings()
	if len(w) != 1 || !strings.HasPrefix(w[0], "the gateway restarted ("+r.title+" epoch went from ") ||
		!strings.HasSuffix(w[0], "): every mapping will be re-created") {
		t.Fatalf("Warnings = %q; want one saying the gateway restarted", w)
	}
	t.Log(w[0])
	if w := r.b.Warnings(); len(w) != 0 {
		t.Errorf("Warnings a second time = %q; want none", w)
	}
	next := r.reopen(t, r.c.Dir)
	if ms, w := r.list(t, next), next.Warnings(); len(ms) != 0 || len(w) != 0 {
		t.Errorf("the run after lists %+v, warns %q; want nothing", ms, w)
	}
	for _, m := range labMappings(r.c.LANHost) {
		forwardtest.MustAdd(t, next, m)
	}
	if ms := r.list(t, next); len(ms) != 2 {
		t.Errorf("List after re-creating = %+v; want the two mappings", ms)
	}
}

// leaseRunsOut: a 2 s lease is granted as miniupnpd's floor for the
// protocol allows, and the grant, not the lease asked, is what Add returns
// and List counts down from. Where the router grants the 2 s (NAT-PMP),
// the mapping then lapses on the router, and the records no longer list
// it; PCP's floor is too long to wait for, and the mapping is deleted.
func (r *labRun) leaseRunsOut(t *testing.T) {
	b := r.reopen(t, t.TempDir())
	m := r.mapping(forward.UDP, 41609, 2*time.Second)
	want := max(m.Lease, r.leaseFloor)
	if got := forwardtest.MustAdd(t, b, m); got.Lease != want {
		t.Fatalf("Add with a %v lease granted %v; want %v", m.Lease, got.Lease, want)
	}
	if ms := r.list(t, b); len(ms) != 1 || ms[0].Lease > want || ms[0].Lease < want-time.Second {
		t.Errorf("List = %+v; want the mapping with the %v granted left", ms, want)
	}
	if r.leaseFloor > m.Lease {
		r.mustDelete(t, b, m)
		return
	}
	time.Sleep(want + 1500*time.Millisecond) // miniupnpd cleans up on whole seconds
	if ms := r.list(t, b); len(ms) != 0 || r.routerHolds(t, m) {
		t.Errorf("after the lease ran out List = %+v, on the router %v; want it gone from both", ms, r.routerHolds(t, m))
	}
}
