package upnp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

// fakePCPGateway is a PCP gateway behind the pcpClient interface, keyed by
// external port like miniupnpd 2.3.1. Its epoch counts seconds of the test
// clock since boot.
type fakePCPGateway struct {
	mu         sync.Mutex
	clock      *fakeClock
	boot       time.Time
	ext        netip.Addr
	maxLife    time.Duration                         // longest lifetime granted; 0 means any
	held       map[forward.Key]bool                  // external ports another device holds
	mappings   map[forward.Key]fakePCPGatewayMapping // by protocol and external port
	code       PCPResultCode                         // result code for MAP requests, when set
	thirdParty PCPResultCode                         // result code for THIRD_PARTY requests, when set
	silent     bool                                  // no answer to anything
	requests   []MapRequest
}

type fakePCPGatewayMapping struct {
	nonce    [12]byte
	internal uint16
	host     netip.Addr // zero: the requesting host
}

func newFakePCPGateway() *fakePCPGateway {
	clock := &fakeClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	return &fakePCPGateway{clock: clock, boot: clock.Now().Add(-time.Hour), ext: netip.MustParseAddr("50.60.70.1"),
		held: map[forward.Key]bool{}, mappings: map[forward.Key]fakePCPGatewayMapping{}}
}

func (f *fakePCPGateway) epoch() uint32 { return uint32(f.clock.Now().Sub(f.boot) / time.Second) }

// reboot loses every mapping and restarts the epoch.
func (f *fakePCPGateway) reboot() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.boot = f.clock.Now()
	clear(f.mappings)
}

// errSilent is how the client reports a gateway that never answers.
var errSilent = fmt.Errorf("PCP request to 127.0.0.1:5351: no answer after 4 tries: %w (%w)", ErrPCPUnsupported, context.DeadlineExceeded)

func (f *fakePCPGateway) Announce(ctx context.Context) (uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.silent {
		return 0, errSilent
	}
	return f.epoch(), nil
}

func (f *fakePCPGateway) Map(ctx context.Context, r MapRequest) (MapResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r)
	if f.silent {
		return MapResponse{}, errSilent
	}
	code := f.code
	if r.ThirdParty.IsValid() && f.thirdParty != 0 {
		code = f.thirdParty
	}
	if code != PCPSuccess {
		return MapResponse{Epoch: f.epoch(), Nonce: r.Nonce}, &PCPError{Code: code, Opcode: pcpOpMap,
			Version: pcpVersion, Client: loopback, ThirdParty: r.ThirdParty}
	}
	if r.Lifetime == 0 {
		f.delete(r)
		return MapResponse{Epoch: f.epoch(), Nonce: r.Nonce}, nil
	}
	return f.create(r), nil
}

// delete removes the mapping of r's nonce, protocol and internal port
// (§15); an absent one is no error.
func (f *fakePCPGateway) delete(r MapRequest) {
	for k, m := range f.mappings {
		if k.Protocol == r.Protocol && m.nonce == r.Nonce && m.internal == r.InternalPort && m.host == r.ThirdParty {
			delete(f.mappings, k)
		}
	}
}

// create maps the suggested port, or the next free one as miniupnpd does.
func (f *fakePCPGateway) create(r MapRequest) MapResponse {
	k := forward.Key{Protocol: r.Protocol, ExternalPort: r.SuggestedPort}
	for {
		m, taken := f.mappings[k]
		if !f.held[k] && (!taken || (m.nonce == r.Nonce && m.internal == r.InternalPort)) {
			break
		}
		k.ExternalPort++
	}
	life := r.Lifetime
	if f.maxLife != 0 {
		life = min(life, f.maxLife)
	}
	f.mappings[k] = fakePCPGatewayMapping{nonce: r.Nonce, internal: r.InternalPort, host: r.ThirdParty}
	return MapResponse{Lifetime: life, Epoch: f.epoch(), ExternalPort: k.ExternalPort, ExternalIP: f.ext, Nonce: r.Nonce}
}

func (f *fakePCPGateway) has(k forward.Key) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.mappings[k]
	return ok
}

func (f *fakePCPGateway) lastRequest() MapRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[len(f.requests)-1]
}

func (f *fakePCPGateway) sent() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

// pcpEnv is a PCP backend over a fake, with its state directory.
type pcpEnv struct {
	fake  *fakePCPGateway
	dir   string
	state *forward.State
	p     *PCP
}

func newPCPEnv(t *testing.T) *pcpEnv {
	e := &pcpEnv{fake: newFakePCPGateway(), dir: t.TempDir()}
	e.reopen(t)
	t.Cleanup(func() { e.state.Close() })
	return e
}

// reopen closes the state and opens it again from disk with a fresh
// backend, as the next run would see it.
func (e *pcpEnv) reopen(t *testing.T) {
	t.Helper()
	if e.state != nil {
		e.state.Close()
	}
	var err error
	if e.state, err = forward.OpenState(e.dir, time.Second); err != nil {
		t.Fatal(err)
	}
	if e.p, err = NewPCP(loopback, e.state, PCPOptions{Now: e.fake.clock.Now}); err != nil {
		t.Fatal(err)
	}
	e.p.client = e.fake
}

// recorded is the record on k in the state file on disk.
func (e *pcpEnv) recorded(t *testing.T, k forward.Key) (forward.Recorded, bool) {
	t.Helper()
	e.reopen(t)
	return e.state.Gateway("pcp", loopback).Find(k)
}

func TestPCPProperties(t *testing.T) {
	e := newPCPEnv(t)
	want := forward.Properties{Name: "pcp", Gateway: "pcp://127.0.0.1:5351",
		Protocols: []string{"PCP (RFC 6887)"}, ListsFromState: true, ThirdParty: forward.ThirdPartyYes}
	if p := e.p.Properties(); fmt.Sprint(p) != fmt.Sprint(want) {
		t.Errorf("Properties = %+v, want %+v", p, want)
	}
	if e.p.LocalAddr() != loopback {
		t.Errorf("LocalAddr = %v, want %v", e.p.LocalAddr(), loopback)
	}
	if _, err := NewPCP(loopback, nil, PCPOptions{}); err == nil {
		t.Error("NewPCP accepted no state")
	}
}

// TestPCPAddListDelete: every change is in the state file on disk before
// the call returns, with the nonce; List answers from it with the lease
// left; Delete sends lifetime 0 with that nonce (RFC 6887 §15).
func TestPCPAddListDelete(t *testing.T) {
	e := newPCPEnv(t)
	m := natpmpMapping(forward.TCP, 25565, time.Hour)
	got, err := e.p.Add(testCtx(t), m)
	if err != nil || got.Lease != time.Hour || got.Key != m.Key {
		t.Fatalf("Add = %+v, %v; want %v with a 1h lease", got, err, m)
	}
	req := e.fake.lastRequest()
	if req.Nonce == ([12]byte{}) || req.SuggestedPort != 25565 || req.InternalPort != 25565 ||
		req.Lifetime != time.Hour || req.ThirdParty.IsValid() || req.SuggestedIP.IsValid() {
		t.Errorf("request %+v", req)
	}
	r, ok := e.recorded(t, m.Key)
	if !ok || r.GrantedPort != 25565 || !r.Expires.Equal(e.fake.clock.Now().Add(time.Hour)) ||
		r.Description != m.Description || r.Nonce != encodeNonce(req.Nonce) {
		t.Fatalf("state on disk after Add: %+v, %v", r, ok)
	}
	e.fake.clock.Advance(10 * time.Minute)
	ms, err := e.p.List(testCtx(t))
	want := m
	want.Lease = 50 * time.Minute
	if err != nil || len(ms) != 1 || ms[0] != want {
		t.Fatalf("List = %+v, %v; want [%+v]", ms, err, want)
	}
	if err := e.p.Delete(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	del := e.fake.lastRequest()
	if del.Nonce != req.Nonce || del.Lifetime != 0 || del.SuggestedPort != 25565 || del.InternalPort != 25565 {
		t.Errorf("delete request %+v", del)
	}
	if _, ok := e.recorded(t, m.Key); ok || e.fake.has(m.Key) {
		t.Errorf("after Delete: recorded %v, on the gateway %v", ok, e.fake.has(m.Key))
	}
	n := e.fake.sent()
	if err := e.p.Delete(testCtx(t), m); err != nil || e.fake.sent() != n {
		t.Errorf("Delete without a record: %v, %d requests sent", err, e.fake.sent()-n)
	}
}

// TestPCPNonces: a renewal, in this run or the next, repeats the nonce
// (§11.2); every new mapping gets its own random one.
func TestPCPNonces(t *testing.T) {
	e := newPCPEnv(t)
	m := natpmpMapping(forward.UDP, 19132, time.Hour)
	if _, err := e.p.Add(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	first := e.fake.lastRequest().Nonce
	e.reopen(t)
	e.fake.clock.Advance(30 * time.Minute)
	if _, err := e.p.Add(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	if again := e.fake.lastRequest().Nonce; again != first {
		t.Errorf("renewal nonce %x, want the recorded %x", again, first)
	}
	if r, _ := e.recorded(t, m.Key); !r.Expires.Equal(e.fake.clock.Now().Add(time.Hour)) {
		t.Errorf("renewal not recorded: expires %v", r.Expires)
	}
	seen := map[[12]byte]bool{first: true}
	for port := uint16(1000); port < 1005; port++ {
		if _, err := e.p.Add(testCtx(t), natpmpMapping(forward.UDP, port, time.Hour)); err != nil {
			t.Fatal(err)
		}
		n := e.fake.lastRequest().Nonce
		if seen[n] || n == ([12]byte{}) {
			t.Errorf("new mapping on %d reused or zeroed nonce %x", port, n)
		}
		seen[n] = true
	}
	moved := m
	moved.InternalPort++
	if _, err := e.p.Add(testCtx(t), moved); !errors.Is(err, forward.ErrConflict) || e.fake.requests[len(e.fake.requests)-2].Nonce == first {
		t.Errorf("a new internal port on a recorded key reused the nonce, or was not refused: %v", err)
	}
}

// TestPCPPermanentLease: a permanent lease is asked as a week, never as 0
// (a deletion, RFC 6887 §15), and what the gateway grants is recorded.
func TestPCPPermanentLease(t *testing.T) {
	e := newPCPEnv(t)
	e.fake.maxLife = 24 * time.Hour
	m := natpmpMapping(forward.TCP, 25565, 0)
	got, err := e.p.Add(testCtx(t), m)
	if err != nil || got.Lease != 24*time.Hour {
		t.Fatalf("Add = %+v, %v; want the granted day", got, err)
	}
	if req := e.fake.lastRequest(); req.Lifetime != forward.PermanentLeaseCap || pcpLifetime(req.Lifetime) != 604800 {
		t.Errorf("requested lifetime %v, want %v", req.Lifetime, forward.PermanentLeaseCap)
	}
	if r, _ := e.recorded(t, m.Key); !r.Expires.Equal(e.fake.clock.Now().Add(24 * time.Hour)) {
		t.Errorf("recorded expiry %v", r.Expires)
	}
}

// TestPCPThirdParty: a mapping to another host carries THIRD_PARTY
// (§13.1); a refusal, in either of its forms, says what to do.
func TestPCPThirdParty(t *testing.T) {
	other := netip.MustParseAddr("192.168.1.50")
	m := natpmpMapping(forward.TCP, 25565, time.Hour)
	m.InternalHost = other
	for _, code := range []PCPResultCode{PCPUnsuppOption, PCPNotAuthorized} {
		e := newPCPEnv(t)
		e.fake.thirdParty = code
		_, err := e.p.Add(testCtx(t), m)
		if !errors.Is(err, forward.ErrNotAuthorized) || !strings.HasPrefix(err.Error(), "adding mapping tcp/25565: ") ||
			!strings.Contains(err.Error(), "refuses mappings for other hosts") ||
			!strings.Contains(err.Error(), "pcp_allow_thirdparty=yes") || !strings.Contains(err.Error(), "run portfwd on 192.168.1.50") {
			t.Errorf("%v: Add = %v; want ErrNotAuthorized with the way out", code, err)
		}
		if req := e.fake.lastRequest(); req.ThirdParty != other {
			t.Errorf("%v: request %+v carries no THIRD_PARTY %v", code, req, other)
		}
		if _, ok := e.recorded(t, m.Key); ok {
			t.Errorf("%v: the refused mapping is recorded", code)
		}
	}
	e := newPCPEnv(t)
	if _, err := e.p.Add(testCtx(t), m); err != nil {
		t.Fatalf("Add with THIRD_PARTY allowed: %v", err)
	}
	if err := e.p.Delete(testCtx(t), m); err != nil || e.fake.lastRequest().ThirdParty != other || e.fake.has(m.Key) {
		t.Errorf("Delete = %v, request %+v; want THIRD_PARTY %v and the mapping gone", err, e.fake.lastRequest(), other)
	}
}

// TestPCPPortMoved: a gateway that grants another external port has the
// mapping deleted again with the same nonce, and Add fails as a conflict.
func TestPCPPortMoved(t *testing.T) {
	e := newPCPEnv(t)
	m := natpmpMapping(forward.TCP, 25565, time.Hour)
	e.fake.held[m.Key] = true
	_, err := e.p.Add(testCtx(t), m)
	var ce *forward.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, forward.ErrConflict) || ce.Holder != (forward.Mapping{}) {
		t.Fatalf("Add = %v; want a *forward.ConflictError with an unknown holder", err)
	}
	want := "the gateway would only forward tcp/25565 as external port 25566 (the port is taken, perhaps by another device); choose another external_port"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q\nwant it to say %q", err, want)
	}
	add, del := e.fake.requests[0], e.fake.lastRequest()
	if del.Nonce != add.Nonce || del.Lifetime != 0 || del.SuggestedPort != 25566 ||
		e.fake.has(forward.Key{Protocol: forward.TCP, ExternalPort: 25566}) {
		t.Errorf("the moved mapping was not deleted: last request %+v", del)
	}
	if _, ok := e.recorded(t, m.Key); ok {
		t.Error("the moved mapping is recorded")
	}
}

// TestPCPErrorsPassThrough: other result codes keep their own advice and
// type, with what portfwd was doing.
func TestPCPErrorsPassThrough(t *testing.T) {
	e := newPCPEnv(t)
	e.fake.code = PCPNoResources
	_, err := e.p.Add(testCtx(t), natpmpMapping(forward.TCP, 25565, time.Hour))
	var perr *PCPError
	if !errors.As(err, &perr) || perr.Code != PCPNoResources || !strings.HasPrefix(err.Error(), "adding mapping tcp/25565: PCP MAP failed with NO_RESOURCES: ") {
		t.Errorf("Add = %v; want the NO_RESOURCES *PCPError", err)
	}
}

// TestPCPEpochReset: after a gateway reboot (RFC 6887 §8.5) List drops
// every record and the external address, saves, warns, and returns
// nothing.
func TestPCPEpochReset(t *testing.T) {
	e := newPCPEnv(t)
	for _, p := range []forward.Protocol{forward.TCP, forward.UDP} {
		if _, err := e.p.Add(testCtx(t), natpmpMapping(p, 25565, time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	e.fake.clock.Advance(10 * time.Minute)
	e.reopen(t)
	if ms, err := e.p.List(testCtx(t)); err != nil || len(ms) != 2 || len(e.p.Warnings()) != 0 {
		t.Fatalf("List before the reboot = %v, %v, warnings %q", ms, err, e.p.Warnings())
	}
	e.fake.clock.Advance(10 * time.Minute)
	e.fake.reboot()
	e.fake.clock.Advance(30 * time.Second)
	ms, err := e.p.List(testCtx(t))
	if err != nil || len(ms) != 0 {
		t.Fatalf("List after the reboot = %v, %v; want nothing", ms, err)
	}
	want := "the gateway restarted (PCP epoch went from 4200 to 30): every mapping will be re-created"
	if w := e.p.Warnings(); len(w) != 1 || w[0] != want {
		t.Errorf("Warnings = %q, want [%q]", w, want)
	}
	if _, ok := e.recorded(t, forward.Key{Protocol: forward.TCP, ExternalPort: 25565}); ok {
		t.Error("records kept on disk after the reboot")
	}
	if g := e.state.Gateway("pcp", loopback); g.External != "" {
		t.Errorf("external address %q kept after the reboot", g.External)
	}
}

// TestPCPEpochResetOnAdd: the epoch in a MAP answer is checked too; the
// new mapping stays recorded, the lost ones go.
func TestPCPEpochResetOnAdd(t *testing.T) {
	e := newPCPEnv(t)
	if _, err := e.p.Add(testCtx(t), natpmpMapping(forward.TCP, 1000, time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.fake.reboot()
	e.fake.clock.Advance(time.Minute)
	m := natpmpMapping(forward.TCP, 2000, time.Hour)
	if _, err := e.p.Add(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	if len(e.p.Warnings()) != 1 {
		t.Errorf("Warnings = %q", e.p.Warnings())
	}
	ms, err := e.p.List(testCtx(t))
	if err != nil || len(ms) != 1 || ms[0].Key != m.Key {
		t.Errorf("List = %+v, %v; want only %v", ms, err, m.Key)
	}
}

// TestPCPListFailsWithoutGateway: List does not answer from the state when
// the gateway is silent; it could not tell a reboot.
func TestPCPListFailsWithoutGateway(t *testing.T) {
	e := newPCPEnv(t)
	e.fake.silent = true
	if _, err := e.p.List(testCtx(t)); !errors.Is(err, ErrPCPUnsupported) || !strings.HasPrefix(err.Error(), "listing mappings: ") {
		t.Errorf("List = %v; want ErrPCPUnsupported", err)
	}
	if _, err := e.p.ExternalAddr(testCtx(t)); err == nil {
		t.Error("ExternalAddr answered")
	}
}

// TestPCPExternalAddr: unknown until a mapping's answer reports it, then
// kept across runs.
func TestPCPExternalAddr(t *testing.T) {
	e := newPCPEnv(t)
	if a, err := e.p.ExternalAddr(testCtx(t)); err == nil || !strings.Contains(err.Error(), "unknown until a mapping exists") {
		t.Errorf("ExternalAddr before any mapping = %v, %v", a, err)
	}
	if e.fake.sent() != 0 {
		t.Errorf("ExternalAddr sent %d MAP requests", e.fake.sent())
	}
	m := natpmpMapping(forward.TCP, 25565, time.Hour)
	if _, err := e.p.Add(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Delete(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	e.reopen(t)
	if a, err := e.p.ExternalAddr(testCtx(t)); err != nil || a != e.fake.ext {
		t.Errorf("ExternalAddr = %v, %v; want %v", a, err, e.fake.ext)
	}
}

// pcpPrimed returns b once a mapping on port has been made and deleted, so
// that its ExternalAddr is known, as it is after any run that mapped a port.
func pcpPrimed(t *testing.T, b *PCP, self netip.Addr, port uint16) *PCP {
	t.Helper()
	m := natpmpMapping(forward.TCP, port, time.Minute)
	m.InternalHost = self
	if _, err := b.Add(testCtx(t), m); err != nil {
		t.Fatalf("priming with %v: %v", m.Key, err)
	}
	if err := b.Delete(testCtx(t), m); err != nil {
		t.Fatalf("priming with %v: %v", m.Key, err)
	}
	return b
}

func TestPCPConforms(t *testing.T) {
	forwardtest.Run(t, forwardtest.Harness{
		New:   func(t *testing.T) forward.Backend { return pcpPrimed(t, newPCPEnv(t).p, loopback, 40003) },
		Self:  loopback,
		Port:  40000,
		Lease: time.Hour,
	})
}
