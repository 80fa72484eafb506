package pcp

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

// TestPCPNonces: a renewal, in this run or the next, repeats the nonce
// (RFC 6887 §11.2); every new mapping gets its own random one; a delete
// sends the recorded one with lifetime 0 (§15).
func TestPCPNonces(t *testing.T) {
	e := newEnv(t, OpenPCP)
	m := mapping(forward.UDP, 19132, time.Hour)
	forwardtest.MustAdd(t, e.b, m)
	first := e.fake.lastMAP(1)
	if r, _ := e.recorded(t, m.Key); first.nonce == ([12]byte{}) || r.Nonce != encodeNonce(first.nonce) {
		t.Fatalf("nonce %x recorded as %q", first.nonce, r.Nonce)
	}
	e.fake.clock.Advance(30 * time.Minute)
	forwardtest.MustAdd(t, e.reopen(t), m)
	if again := e.fake.lastMAP(1).nonce; again != first.nonce {
		t.Errorf("renewal in the next run: nonce %x, want the recorded %x", again, first.nonce)
	}
	seen := map[[12]byte]bool{first.nonce: true}
	for port := uint16(1000); port < 1005; port++ {
		forwardtest.MustAdd(t, e.b, mapping(forward.UDP, port, time.Hour))
		if n := e.fake.lastMAP(1).nonce; seen[n] {
			t.Errorf("new mapping on %d reused nonce %x", port, n)
		}
		seen[e.fake.lastMAP(1).nonce] = true
	}
	if err := e.b.Delete(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	if del := e.fake.lastMAP(1); del.nonce != first.nonce || del.lifetime != 0 || del.suggested != 19132 || del.internal != 19132 {
		t.Errorf("delete request %+v", del)
	}
}

// TestPCPNewInternalPort: a new internal port on a recorded key is another
// mapping, with a new nonce; the gateway holds the port for the old one.
func TestPCPNewInternalPort(t *testing.T) {
	e := newEnv(t, OpenPCP)
	m := mapping(forward.UDP, 19132, time.Hour)
	forwardtest.MustAdd(t, e.b, m)
	first := e.fake.lastMAP(1).nonce
	moved := m
	moved.InternalPort++
	if _, err := e.b.Add(testCtx(t), moved); !errors.Is(err, forward.ErrConflict) || e.fake.lastMAP(2).nonce == first {
		t.Errorf("Add = %v; want a new nonce, and a conflict", err)
	}
}

// TestPCPPortMovedDeletedWithNonce: a grant on another port is deleted
// again with the same nonce, and Add fails as a conflict.
func TestPCPPortMovedDeletedWithNonce(t *testing.T) {
	e := newEnv(t, OpenPCP)
	m := mapping(forward.TCP, 25565, time.Hour)
	e.fake.set(func(f *fakeGateway) { f.held[m.Key] = true })
	_, err := e.b.Add(testCtx(t), m)
	want := "adding mapping tcp/25565: the gateway would only forward tcp/25565 as external port 25566 (the port is taken, perhaps by another device); choose another external_port"
	if !errors.Is(err, forward.ErrConflict) || err.Error() != want {
		t.Fatalf("Add = %v\nwant %s", err, want)
	}
	add, del := e.fake.lastMAP(2), e.fake.lastMAP(1)
	if del.nonce != add.nonce || del.lifetime != 0 || del.suggested != 25566 || e.fake.has(key(forward.TCP, 25566)) {
		t.Errorf("the moved mapping was not deleted: %+v after %+v", del, add)
	}
}

// TestPCPThirdPartyRefused: a gateway that refuses THIRD_PARTY, in either
// of its ways, makes Add say what to do; nothing is recorded.
func TestPCPThirdPartyRefused(t *testing.T) {
	m := mapping(forward.TCP, 25565, time.Hour)
	m.InternalHost = netip.MustParseAddr("192.168.1.50")
	for _, code := range []ResultCode{UnsuppOption, NotAuthorized} {
		e := newEnv(t, OpenPCP)
		e.fake.set(func(f *fakeGateway) { f.pcpThirdParty = code })
		_, err := e.b.Add(testCtx(t), m)
		if !errors.Is(err, forward.ErrNotAuthorized) || !strings.HasPrefix(err.Error(), "adding mapping tcp/25565: PCP MAP failed with ") ||
			!strings.Contains(err.Error(), "refuses mappings for other hosts") ||
			!strings.Contains(err.Error(), "pcp_allow_thirdparty=yes") || !strings.Contains(err.Error(), "run portfwd on 192.168.1.50") {
			t.Errorf("%v: Add = %v; want ErrNotAuthorized with the way out", code, err)
		}
		if req := e.fake.lastMAP(1); req.thirdParty != m.InternalHost {
			t.Errorf("%v: request %+v carries no THIRD_PARTY %v", code, req, m.InternalHost)
		}
		if _, ok := e.recorded(t, m.Key); ok {
			t.Errorf("%v: the refused mapping is recorded", code)
		}
	}
}

// TestPCPResultCodes: refusals keep their code and advice, with what
// portfwd was doing; those callers branch on wrap their sentinel.
func TestPCPResultCodes(t *testing.T) {
	for _, tc := range []struct {
		code ResultCode
		is   error
		says string
	}{
		{NoResources, nil, "adding mapping tcp/25565: PCP MAP failed with NO_RESOURCES: the gateway is out of mappings"},
		{CannotProvideExternal, forward.ErrConflict, "the suggested external port is taken by another mapping"},
		{AddressMismatch, forward.ErrDoubleNAT, "another address than this host's address 127.0.0.1: another NAT sits between"},
		{NetworkFailure, forward.ErrDoubleNAT, "NETWORK_FAILURE: the gateway has no working WAN connection"},
	} {
		e := newEnv(t, OpenPCP)
		e.fake.set(func(f *fakeGateway) { f.pcpCode = tc.code })
		_, err := e.b.Add(testCtx(t), mapping(forward.TCP, 25565, time.Hour))
		var code ResultCode
		if !errors.As(err, &code) || code != tc.code || !strings.Contains(err.Error(), tc.says) || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("%v: Add = %v; want the code, wrapping %v, saying %q", tc.code, err, tc.is, tc.says)
		}
	}
}

// TestPCPNetworkFailureBehindCGNAT: the external address the last mapping
// reported tells a gateway behind carrier-grade NAT.
func TestPCPNetworkFailureBehindCGNAT(t *testing.T) {
	e := newEnv(t, OpenPCP)
	e.fake.set(func(f *fakeGateway) { f.ext = netip.MustParseAddr("100.64.0.1") })
	forwardtest.MustAdd(t, e.b, mapping(forward.TCP, 25565, time.Hour))
	e.fake.set(func(f *fakeGateway) { f.pcpCode = NetworkFailure })
	_, err := e.b.Add(testCtx(t), mapping(forward.TCP, 25566, time.Hour))
	if !errors.Is(err, forward.ErrDoubleNAT) || !strings.Contains(err.Error(), "WAN address 100.64.0.1 is private or shared") {
		t.Errorf("Add = %v; want the carrier-grade NAT diagnosis", err)
	}
}

// TestPCPDeleteAbsent: miniupnpd 2.3.1 answers the delete of a mapping it
// no longer has with NO_RESOURCES; §15 says that delete succeeds.
func TestPCPDeleteAbsent(t *testing.T) {
	e := newEnv(t, OpenPCP)
	m := mapping(forward.TCP, 25565, time.Hour)
	forwardtest.MustAdd(t, e.b, m)
	e.fake.set(func(f *fakeGateway) { clear(f.table) }) // lapsed, say, with no restart
	if err := e.b.Delete(testCtx(t), m); err != nil {
		t.Errorf("Delete of a mapping the gateway lost = %v; want success", err)
	}
	if _, ok := e.recorded(t, m.Key); ok {
		t.Error("the record was kept")
	}
}

// TestPCPDeleteWithoutNonce: a record that lost its nonce cannot be
// deleted, only left to lapse; the record goes, and the user is told.
func TestPCPDeleteWithoutNonce(t *testing.T) {
	e := newEnv(t, OpenPCP)
	m := mapping(forward.TCP, 25565, time.Hour)
	e.b.rec.gateway("pcp", loopback).put(entry{Mapping: m, GrantedPort: 25565, Expires: e.fake.clock.Now().Add(time.Hour)})
	sent := e.fake.count()
	err := e.b.Delete(testCtx(t), m)
	if err == nil || !strings.Contains(err.Error(), "holds no nonce for it") || !strings.Contains(err.Error(), "it lapses at 2025-06-01T13:00:00Z") || e.fake.count() != sent {
		t.Errorf("Delete = %v, %d sent; want the error, nothing sent", err, e.fake.count()-sent)
	}
	if _, ok := e.recorded(t, m.Key); ok {
		t.Error("the record was kept")
	}
}

// TestPCPExternalAddr: unknown until a mapping's answer reports it, then
// kept across runs; asking sends no MAP.
func TestPCPExternalAddr(t *testing.T) {
	e := newEnv(t, OpenPCP)
	a, err := e.b.ExternalAddr(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "unknown until a mapping exists") || e.fake.last(1)[1] != pcpOpAnnounce {
		t.Errorf("ExternalAddr before any mapping = %v, %v; want unknown, after an ANNOUNCE", a, err)
	}
	m := mapping(forward.TCP, 25565, time.Hour)
	forwardtest.MustAdd(t, e.b, m)
	if err := e.b.Delete(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	if a, err := e.reopen(t).ExternalAddr(testCtx(t)); err != nil || a != netip.MustParseAddr("50.60.70.1") {
		t.Errorf("ExternalAddr in the next run = %v, %v", a, err)
	}
	e.fake.reboot()
	e.fake.clock.Advance(time.Minute)
	if _, err := e.reopen(t).ExternalAddr(testCtx(t)); err == nil {
		t.Error("ExternalAddr after a restart answered the address from before it")
	}
}
