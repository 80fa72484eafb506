package pcp

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/internal/lab"
)

// labWirePort is the port TestLabPCPWire maps.
const labWirePort = 41500

// labWireMapping is the mapping TestLabPCPWire makes to host.
func labWireMapping(host netip.Addr) forward.Mapping {
	return labMapping(forward.TCP, labWirePort, host, labLease)
}

// TestLabPCPWire proves the PCP mapper's requests on miniupnpd, result
// codes and all, below the backend: ANNOUNCE and its epoch; MAP granted
// as asked on the router's WAN address, reaching the LAN host; renewal
// with the same nonce; delete, and the delete of an absent mapping; MAP
// with another nonce; THIRD_PARTY refused without pcp_allow_thirdparty;
// the epoch after a reboot. The phases keep the mapping (its nonce) and
// the last epoch in the records they share.
func TestLabPCPWire(t *testing.T) {
	if c, ok := lab.ChildOf(t); ok {
		w := newLabWire(t, c)
		labPhase(t, c.Phase, map[string]func(*testing.T){"map": w.mapPhase, "renew": w.renew,
			"delete": w.delete, "refusals": w.refusals, "after-reboot": w.afterReboot})
		return
	}
	t.Parallel()
	l := lab.ForTest(t, lab.Options{})
	l.Serve(t, lab.LAN, "tcp", labWirePort, "lan wire")
	labPhases(t, l, []labStep{{"map", true}, {"renew", true}, {"delete", false}, {"refusals", false}}, labWireMapping(l.LANHost))
	if err := l.Reboot(t.Context()); err != nil {
		t.Fatal(err)
	}
	l.RunChild(t, lab.LAN, "after-reboot", lab.ChildOptions{})
}

// labWire is one phase of TestLabPCPWire: the PCP mapper on the LAN host,
// and the records that carry the mapping and the epoch to the next phase.
type labWire struct {
	c   *lab.Child
	p   *pcpMapper
	rec *Records
	g   *gatewayRecord
}

// newLabWire is the mapper toward the router, asking from the LAN host.
func newLabWire(t *testing.T, c *lab.Child) *labWire {
	server := netip.AddrPortFrom(c.RouterLAN, serverPort)
	local, err := forward.SourceAddr(server)
	if err != nil || local != c.LANHost {
		t.Fatalf("the address toward %v is %v, %v; want %v", server, local, err, c.LANHost)
	}
	rec, err := OpenRecords(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	return &labWire{c: c, p: newPCPMapper(server, local, 0).(*pcpMapper), rec: rec, g: rec.gateway(pcpFacts.name, c.RouterLAN)}
}

// send sends the MAP request for e, suggesting port, for lifetime seconds
// (0 deletes), and returns the response.
func (w *labWire) send(t *testing.T, e entry, port uint16, lifetime uint32) pcpMessage {
	t.Helper()
	m, _, err := w.p.send(testCtx(t), e, port, lifetime)
	if err != nil {
		t.Fatalf("MAP %v for %d s: %v", e.Key, lifetime, err)
	}
	t.Logf("MAP %v for %d s: %v, lifetime %d, epoch %d, %+v", e.Key, lifetime, m.Result, m.Lifetime, m.Epoch, m.Map)
	return m
}

// newEntry is the mapping of TestLabPCPWire with a new nonce.
func (w *labWire) newEntry() entry {
	return entry{Mapping: labWireMapping(w.c.LANHost), GrantedPort: labWirePort, Nonce: encodeNonce(newNonce())}
}

// saved is the mapping the last phase recorded.
func (w *labWire) saved(t *testing.T) entry {
	t.Helper()
	e, ok := w.g.find(labWireMapping(w.c.LANHost).Key)
	if !ok {
		t.Fatal("no mapping recorded by the phase before")
	}
	return e
}

// checkEpoch checks epoch against the one recorded, with the restart rule
// of RFC 6887 §8.5, and records it with the time.
func (w *labWire) checkEpoch(t *testing.T, epoch uint32, restart bool) {
	t.Helper()
	now := time.Now()
	if !w.g.EpochAt.IsZero() && w.p.restarted(w.g.Epoch, w.g.EpochAt, epoch, now) != restart {
		t.Errorf("epoch %d %v after %d: restarted %v, want %v", epoch, now.Sub(w.g.EpochAt).Round(time.Millisecond), w.g.Epoch, !restart, restart)
	}
	w.g.Epoch, w.g.EpochAt = epoch, now
}

// save writes the records for the next phase.
func (w *labWire) save(t *testing.T) {
	t.Helper()
	if err := w.rec.Save(); err != nil {
		t.Fatal(err)
	}
}

// mapPhase: ANNOUNCE answers with the epoch; MAP is granted the port asked
// on the router's WAN address, echoing the nonce, for at most the lifetime
// asked, with an epoch that shows no restart.
func (w *labWire) mapPhase(t *testing.T) {
	start := time.Now()
	a, err := w.p.announce(testCtx(t))
	if err != nil {
		t.Fatalf("ANNOUNCE: %v", err)
	}
	t.Logf("ANNOUNCE: epoch %d, in %v", a.epoch, time.Since(start).Round(100*time.Microsecond))
	w.checkEpoch(t, a.epoch, false)
	e := w.newEntry()
	m := w.send(t, e, labWirePort, 600)
	nonce, _ := decodeNonce(e.Nonce)
	if m.Result != Success || m.Map == nil || m.Map.Port != labWirePort || m.Map.IP != w.c.RouterWAN || m.Map.Nonce != nonce ||
		m.Lifetime == 0 || m.Lifetime > 600 {
		t.Fatalf("MAP = %v %+v, lifetime %d; want %v:%d for at most 600 s, with the nonce", m.Result, m.Map, m.Lifetime, w.c.RouterWAN, labWirePort)
	}
	w.checkEpoch(t, m.Epoch, false)
	w.g.put(e)
	w.save(t)
}

// renew: the same MAP, nonce and all, a while later keeps the port; the
// epoch has moved on, not back.
func (w *labWire) renew(t *testing.T) {
	time.Sleep(1100 * time.Millisecond) // let the epoch move
	m := w.send(t, w.saved(t), labWirePort, 600)
	if m.Result != Success || m.Map == nil || m.Map.Port != labWirePort || m.Epoch <= w.g.Epoch {
		t.Errorf("renewal = %v %+v, epoch %d after %d; want the same port", m.Result, m.Map, m.Epoch, w.g.Epoch)
	}
	w.checkEpoch(t, m.Epoch, false)
	w.save(t)
}

// delete: MAP with lifetime 0 and the nonce deletes (RFC 6887 §15). A
// second delete, of a mapping that is gone, gets NO_RESOURCES from
// miniupnpd 2.3.1 where §15 says SUCCESS, which the mapper takes for the
// success it means.
func (w *labWire) delete(t *testing.T) {
	e := w.saved(t)
	if m := w.send(t, e, labWirePort, 0); m.Result != Success || m.Lifetime != 0 {
		t.Errorf("delete = %v, lifetime %d; want SUCCESS, 0", m.Result, m.Lifetime)
	}
	if m := w.send(t, e, labWirePort, 0); m.Result != NoResources {
		t.Errorf("deleting the absent mapping = %v; want miniupnpd 2.3.1's NO_RESOURCES", m.Result)
	}
	if _, err := w.p.unmap(testCtx(t), e); err != nil {
		t.Errorf("unmap of the absent mapping = %v; want success (RFC 6887 §15)", err)
	}
	w.g.drop(e.Key)
	w.save(t)
}

// refusals: MAP of the mapping with another nonce, and THIRD_PARTY without
// pcp_allow_thirdparty; then the epoch is let grow past §8.5's slack and
// recorded for the reboot.
func (w *labWire) refusals(t *testing.T) {
	t.Run("OtherNonce", w.otherNonce)
	t.Run("ThirdPartyRefused", w.thirdPartyRefused)
	a, err := w.p.announce(testCtx(t))
	for ; err == nil && a.epoch < 3; a, err = w.p.announce(testCtx(t)) {
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("ANNOUNCE: %v", err)
	}
	w.checkEpoch(t, a.epoch, false)
	w.save(t)
}

// otherNonce: RFC 6887 §11.3 lets only the nonce that made a mapping
// change it. miniupnpd 2.3.1 lets the same host take it over with another
// nonce; the first nonce can no longer delete it, the second can.
func (w *labWire) otherNonce(t *testing.T) {
	first, second := w.newEntry(), w.newEntry()
	if m := w.send(t, first, labWirePort, 600); m.Result != Success {
		t.Fatalf("MAP = %v", m.Result)
	}
	if m := w.send(t, second, labWirePort, 600); m.Result != Success || m.Map.Port != labWirePort {
		t.Errorf("MAP with another nonce = %v %+v; want miniupnpd 2.3.1 to grant it the port", m.Result, m.Map)
	}
	if m := w.send(t, first, labWirePort, 0); m.Result != NotAuthorized {
		t.Errorf("delete with the first nonce = %v; want NOT_AUTHORIZED", m.Result)
	}
	if m := w.send(t, second, labWirePort, 0); m.Result != Success {
		t.Errorf("delete with the nonce that took the mapping over = %v; want SUCCESS", m.Result)
	}
}

// thirdPartyRefused: miniupnpd 2.3.1 answers THIRD_PARTY with
// UNSUPP_OPTION unless pcp_allow_thirdparty=yes, and the user reads what
// to do.
func (w *labWire) thirdPartyRefused(t *testing.T) {
	e := w.newEntry()
	e.InternalHost = w.c.LANHost2
	_, err := w.p.mapPort(testCtx(t), &e, time.Hour)
	t.Logf("THIRD_PARTY %v: %v", e.InternalHost, err)
	var code ResultCode
	if !errors.As(err, &code) || code != UnsuppOption || !errors.Is(err, forward.ErrNotAuthorized) ||
		!strings.Contains(err.Error(), "pcp_allow_thirdparty=yes") || !strings.Contains(err.Error(), e.InternalHost.String()) {
		t.Errorf("MAP for %v = %v; want UNSUPP_OPTION as ErrNotAuthorized, naming the host and pcp_allow_thirdparty", e.InternalHost, err)
	}
}

// afterReboot: the epoch after the reboot is one the restart rule of RFC
// 6887 §8.5 tells from the one before.
func (w *labWire) afterReboot(t *testing.T) {
	if w.g.EpochAt.IsZero() {
		t.Fatal("no epoch recorded before the reboot")
	}
	a, err := w.p.announce(testCtx(t))
	if err != nil {
		t.Fatalf("ANNOUNCE: %v", err)
	}
	t.Logf("epoch %d before the reboot, %d after", w.g.Epoch, a.epoch)
	w.checkEpoch(t, a.epoch, true)
}
