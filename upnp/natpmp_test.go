package upnp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	natpmp "github.com/jackpal/go-nat-pmp"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

// fakeNATPMP is a NAT-PMP gateway behind the natpmpClient interface. Its
// epoch counts seconds of the test clock since boot; errors are worded as
// github.com/jackpal/go-nat-pmp words them.
type fakeNATPMP struct {
	mu       sync.Mutex
	clock    *fakeClock
	boot     time.Time
	ext      [4]byte
	maxLife  uint32                            // longest lifetime granted; 0 means any
	held     map[forward.Key]bool              // external ports another device holds
	mappings map[forward.Key]fakeNATPMPMapping // by protocol and external port
	code     uint16                            // result code for mapping requests, when set
	extCode  uint16                            // result code for GetExternalAddress only
	silent   bool                              // time out every request
	requests []fakeNATPMPRequest
}

type fakeNATPMPMapping struct {
	internal uint16
	lifetime uint32
}

type fakeNATPMPRequest struct {
	protocol           string
	internal, external int
	lifetime           int
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newFakeNATPMP() *fakeNATPMP {
	clock := &fakeClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	return &fakeNATPMP{clock: clock, boot: clock.Now().Add(-time.Hour), ext: [4]byte{50, 60, 70, 1},
		held: map[forward.Key]bool{}, mappings: map[forward.Key]fakeNATPMPMapping{}}
}

func (f *fakeNATPMP) epoch() uint32 { return uint32(f.clock.Now().Sub(f.boot) / time.Second) }

// reboot loses every mapping and restarts the epoch.
func (f *fakeNATPMP) reboot() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.boot = f.clock.Now()
	clear(f.mappings)
}

func (f *fakeNATPMP) fail(code uint16) error {
	if f.silent {
		return errors.New("Timed out trying to contact gateway")
	}
	if code != 0 {
		return fmt.Errorf("Non-zero result code %d (%s)", code, natpmpCodeText[code])
	}
	return nil
}

func (f *fakeNATPMP) GetExternalAddress() (*natpmp.GetExternalAddressResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(f.extCode); err != nil {
		return nil, err
	}
	return &natpmp.GetExternalAddressResult{SecondsSinceStartOfEpoc: f.epoch(), ExternalIPAddress: f.ext}, nil
}

func (f *fakeNATPMP) AddPortMapping(protocol string, internal, external, lifetime int) (*natpmp.AddPortMappingResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, fakeNATPMPRequest{protocol, internal, external, lifetime})
	if err := f.fail(f.code); err != nil {
		return nil, err
	}
	res := &natpmp.AddPortMappingResult{SecondsSinceStartOfEpoc: f.epoch(), InternalPort: uint16(internal)}
	k := forward.Key{Protocol: forward.Protocol(protocol), ExternalPort: uint16(external)}
	if lifetime == 0 { // RFC 6886 §3.4: deletion answers external port 0
		// Like miniupnpd 2.3.1, every mapping of the internal port goes.
		maps.DeleteFunc(f.mappings, func(mk forward.Key, m fakeNATPMPMapping) bool {
			return mk.Protocol == k.Protocol && m.internal == uint16(internal)
		})
		return res, nil
	}
	for f.held[k] { // the port is taken: grant the next one, as miniupnpd does
		k.ExternalPort++
	}
	life := uint32(lifetime)
	if f.maxLife != 0 {
		life = min(life, f.maxLife)
	}
	f.mappings[k] = fakeNATPMPMapping{internal: uint16(internal), lifetime: life}
	res.MappedExternalPort, res.PortMappingLifetimeInSeconds = k.ExternalPort, life
	return res, nil
}

func (f *fakeNATPMP) has(k forward.Key) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.mappings[k]
	return ok
}

func (f *fakeNATPMP) lastRequest() fakeNATPMPRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[len(f.requests)-1]
}

// natpmpEnv is a NATPMP backend over a fake, with its state directory.
type natpmpEnv struct {
	fake  *fakeNATPMP
	dir   string
	state *forward.State
	n     *NATPMP
}

var loopback = netip.MustParseAddr("127.0.0.1")

func newNATPMPEnv(t *testing.T) *natpmpEnv {
	e := &natpmpEnv{fake: newFakeNATPMP(), dir: t.TempDir()}
	e.reopen(t)
	t.Cleanup(func() { e.state.Close() })
	return e
}

// reopen closes the state and opens it again from disk with a fresh
// backend, as the next run (or one after a kill) would see it.
func (e *natpmpEnv) reopen(t *testing.T) {
	t.Helper()
	if e.state != nil {
		e.state.Close()
	}
	var err error
	if e.state, err = forward.OpenState(e.dir, time.Second); err != nil {
		t.Fatal(err)
	}
	if e.n, err = NewNATPMP(loopback, e.state, NATPMPOptions{Now: e.fake.clock.Now}); err != nil {
		t.Fatal(err)
	}
	e.n.dial = func(time.Duration) natpmpClient { return e.fake }
}

// recorded is the record on k in the state file on disk.
func (e *natpmpEnv) recorded(t *testing.T, k forward.Key) (forward.Recorded, bool) {
	t.Helper()
	e.reopen(t)
	return e.state.Gateway("natpmp", loopback).Find(k)
}

func natpmpMapping(p forward.Protocol, port uint16, lease time.Duration) forward.Mapping {
	return forward.Mapping{Key: forward.Key{Protocol: p, ExternalPort: port}, InternalHost: loopback,
		InternalPort: port, Description: forward.Tag("mc"), Lease: lease, Enabled: true}
}

func TestNATPMPProperties(t *testing.T) {
	e := newNATPMPEnv(t)
	p := e.n.Properties()
	want := forward.Properties{Name: "natpmp", Gateway: "natpmp://127.0.0.1:5351",
		Protocols: []string{"NAT-PMP (RFC 6886)"}, ListsFromState: true}
	if fmt.Sprint(p) != fmt.Sprint(want) {
		t.Errorf("Properties = %+v, want %+v", p, want)
	}
	if e.n.LocalAddr() != loopback {
		t.Errorf("LocalAddr = %v, want %v", e.n.LocalAddr(), loopback)
	}
	if _, err := NewNATPMP(netip.MustParseAddr("fe80::1"), e.state, NATPMPOptions{}); err == nil {
		t.Error("NewNATPMP accepted an IPv6 gateway")
	}
}

// TestNATPMPAddListDelete: every change is in the state file on disk
// before the call returns, and List answers from it with the lease left.
func TestNATPMPAddListDelete(t *testing.T) {
	e := newNATPMPEnv(t)
	m := natpmpMapping(forward.TCP, 25565, time.Hour)
	got, err := e.n.Add(testCtx(t), m)
	if err != nil || got.Lease != time.Hour || got.Key != m.Key {
		t.Fatalf("Add = %+v, %v; want %v with a 1h lease", got, err, m)
	}
	if req := e.fake.lastRequest(); req != (fakeNATPMPRequest{"tcp", 25565, 25565, 3600}) {
		t.Errorf("request %+v", req)
	}
	r, ok := e.recorded(t, m.Key)
	if !ok || r.GrantedPort != 25565 || !r.Expires.Equal(e.fake.clock.Now().Add(time.Hour)) || r.Description != m.Description {
		t.Fatalf("state on disk after Add: %+v, %v", r, ok)
	}
	e.fake.clock.Advance(10 * time.Minute)
	ms, err := e.n.List(testCtx(t))
	want := m
	want.Lease = 50 * time.Minute
	if err != nil || len(ms) != 1 || ms[0] != want {
		t.Fatalf("List = %+v, %v; want [%+v]", ms, err, want)
	}
	if err := e.n.Delete(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	if req := e.fake.lastRequest(); req != (fakeNATPMPRequest{"tcp", 25565, 25565, 0}) {
		t.Errorf("delete request %+v", req)
	}
	if _, ok := e.recorded(t, m.Key); ok || e.fake.has(m.Key) {
		t.Errorf("after Delete: recorded %v, on the gateway %v", ok, e.fake.has(m.Key))
	}
	n := len(e.fake.requests)
	if err := e.n.Delete(testCtx(t), m); err != nil || len(e.fake.requests) != n {
		t.Errorf("Delete without a record: %v, %d requests sent", err, len(e.fake.requests)-n)
	}
}

// TestNATPMPListSkipsExpired: an expired record is not listed (and never
// as a zero, "permanent", lease).
func TestNATPMPListSkipsExpired(t *testing.T) {
	e := newNATPMPEnv(t)
	if _, err := e.n.Add(testCtx(t), natpmpMapping(forward.UDP, 19132, time.Minute)); err != nil {
		t.Fatal(err)
	}
	e.fake.clock.Advance(time.Minute - 500*time.Millisecond)
	if ms, err := e.n.List(testCtx(t)); err != nil || len(ms) != 0 {
		t.Errorf("List = %+v, %v; want nothing", ms, err)
	}
}

// TestNATPMPPermanentLease: a permanent lease is asked as a week, never as
// 0 (a deletion, RFC 6886 §3.3), and what the gateway grants is recorded.
func TestNATPMPPermanentLease(t *testing.T) {
	e := newNATPMPEnv(t)
	e.fake.maxLife = 86400
	m := natpmpMapping(forward.TCP, 25565, 0)
	got, err := e.n.Add(testCtx(t), m)
	if err != nil || got.Lease != 24*time.Hour {
		t.Fatalf("Add = %+v, %v; want the granted day", got, err)
	}
	if req := e.fake.lastRequest(); req.lifetime != 604800 {
		t.Errorf("requested lifetime %d, want 604800", req.lifetime)
	}
	if r, _ := e.recorded(t, m.Key); !r.Expires.Equal(e.fake.clock.Now().Add(24 * time.Hour)) {
		t.Errorf("recorded expiry %v", r.Expires)
	}
	if got := lifetimeFor(1500 * time.Millisecond); got != 2 {
		t.Errorf("lifetimeFor(1.5s) = %d, want 2", got)
	}
}

// TestNATPMPPortMoved: a gateway that grants another external port has the
// mapping deleted again, and Add fails as a conflict with no holder.
func TestNATPMPPortMoved(t *testing.T) {
	e := newNATPMPEnv(t)
	m := natpmpMapping(forward.TCP, 25565, time.Hour)
	e.fake.held[m.Key] = true
	_, err := e.n.Add(testCtx(t), m)
	var ce *forward.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, forward.ErrConflict) || ce.Holder != (forward.Mapping{}) {
		t.Fatalf("Add = %v; want a *forward.ConflictError with an unknown holder", err)
	}
	want := "the gateway would only forward tcp/25565 as external port 25566 (the port is taken, perhaps by another device); choose another external_port"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q\nwant it to say %q", err, want)
	}
	if req := e.fake.lastRequest(); req != (fakeNATPMPRequest{"tcp", 25565, 25566, 0}) || e.fake.has(forward.Key{Protocol: forward.TCP, ExternalPort: 25566}) {
		t.Errorf("the moved mapping was not deleted: last request %+v", req)
	}
	if _, ok := e.recorded(t, m.Key); ok {
		t.Error("the moved mapping is recorded")
	}
}

// TestNATPMPSameInternalPort: when the gateway answers with the mapping
// another rule holds on the same internal port, that mapping is kept.
func TestNATPMPSameInternalPort(t *testing.T) {
	e := newNATPMPEnv(t)
	first := natpmpMapping(forward.TCP, 8080, time.Hour)
	if _, err := e.n.Add(testCtx(t), first); err != nil {
		t.Fatal(err)
	}
	second := natpmpMapping(forward.TCP, 8081, time.Hour)
	second.InternalPort = 8080
	e.fake.held[second.Key] = true // the fake then grants 8082, not 8080:
	e.n.dial = func(time.Duration) natpmpClient { return sameInternal{e.fake} }
	_, err := e.n.Add(testCtx(t), second)
	var ce *forward.ConflictError
	if !errors.As(err, &ce) || ce.Holder.Key != first.Key {
		t.Fatalf("Add = %v; want a conflict naming %v", err, first.Key)
	}
	if !e.fake.has(first.Key) {
		t.Error("the first rule's mapping was deleted")
	}
}

// TestNATPMPDeleteKeepsSibling: deleting one of two rules on one internal
// port leaves the other mapped and recorded, though the gateway deletes
// both (RFC 6886 §3.4).
func TestNATPMPDeleteKeepsSibling(t *testing.T) {
	e := newNATPMPEnv(t)
	first, second := natpmpMapping(forward.TCP, 8080, time.Hour), natpmpMapping(forward.TCP, 8081, 2*time.Hour)
	second.InternalPort = 8080
	for _, m := range []forward.Mapping{first, second} {
		if _, err := e.n.Add(testCtx(t), m); err != nil {
			t.Fatal(err)
		}
	}
	e.fake.clock.Advance(time.Minute)
	if err := e.n.Delete(testCtx(t), second); err != nil {
		t.Fatal(err)
	}
	if !e.fake.has(first.Key) || e.fake.has(second.Key) {
		t.Errorf("on the gateway: %v %v, %v %v", first.Key, e.fake.has(first.Key), second.Key, e.fake.has(second.Key))
	}
	r, ok := e.recorded(t, first.Key)
	if !ok || !r.Expires.Equal(e.fake.clock.Now().Add(time.Hour)) {
		t.Errorf("record of %v after restoring: %+v, %v", first.Key, r, ok)
	}
	if req := e.fake.lastRequest(); req != (fakeNATPMPRequest{"tcp", 8080, 8080, 3600}) {
		t.Errorf("last request %+v; want %v restored", req, first.Key)
	}
}

// sameInternal answers every mapping request with the mapping of tcp/8080,
// as a gateway keyed by internal port does.
type sameInternal struct{ *fakeNATPMP }

func (s sameInternal) AddPortMapping(protocol string, internal, external, lifetime int) (*natpmp.AddPortMappingResult, error) {
	if lifetime == 0 {
		return s.fakeNATPMP.AddPortMapping(protocol, internal, external, lifetime)
	}
	return s.fakeNATPMP.AddPortMapping(protocol, internal, 8080, lifetime)
}

// TestNATPMPOtherHost: NAT-PMP maps only for the requesting host.
func TestNATPMPOtherHost(t *testing.T) {
	e := newNATPMPEnv(t)
	m := natpmpMapping(forward.TCP, 25565, time.Hour)
	m.InternalHost = netip.MustParseAddr("192.168.1.50")
	_, err := e.n.Add(testCtx(t), m)
	if !errors.Is(err, forward.ErrNotAuthorized) || !strings.Contains(err.Error(), "run portfwd on 192.168.1.50") {
		t.Errorf("Add for another host = %v; want ErrNotAuthorized naming the host", err)
	}
	if len(e.fake.requests) != 0 {
		t.Errorf("%d requests sent", len(e.fake.requests))
	}
}

// TestNATPMPEpochReset: after a gateway reboot (RFC 6886 §3.6) List drops
// every record, saves, warns, and returns nothing.
func TestNATPMPEpochReset(t *testing.T) {
	e := newNATPMPEnv(t)
	for _, p := range []forward.Protocol{forward.TCP, forward.UDP} {
		if _, err := e.n.Add(testCtx(t), natpmpMapping(p, 25565, time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	e.fake.clock.Advance(10 * time.Minute)
	e.reopen(t)
	if ms, err := e.n.List(testCtx(t)); err != nil || len(ms) != 2 || len(e.n.Warnings()) != 0 {
		t.Fatalf("List before the reboot = %v, %v, warnings %q", ms, err, e.n.Warnings())
	}
	e.fake.clock.Advance(10 * time.Minute)
	e.fake.reboot()
	e.fake.clock.Advance(30 * time.Second)
	ms, err := e.n.List(testCtx(t))
	if err != nil || len(ms) != 0 {
		t.Fatalf("List after the reboot = %v, %v; want nothing", ms, err)
	}
	want := "the gateway restarted (NAT-PMP epoch went from 4200 to 30): every mapping will be re-created"
	if w := e.n.Warnings(); len(w) != 1 || w[0] != want {
		t.Errorf("Warnings = %q, want [%q]", w, want)
	}
	if _, ok := e.recorded(t, forward.Key{Protocol: forward.TCP, ExternalPort: 25565}); ok {
		t.Error("records kept on disk after the reboot")
	}
}

// TestNATPMPEpochResetOnAdd: the epoch in a mapping answer is checked too;
// the new mapping stays recorded, the lost ones go.
func TestNATPMPEpochResetOnAdd(t *testing.T) {
	e := newNATPMPEnv(t)
	if _, err := e.n.Add(testCtx(t), natpmpMapping(forward.TCP, 1000, time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.fake.reboot()
	e.fake.clock.Advance(time.Minute)
	m := natpmpMapping(forward.TCP, 2000, time.Hour)
	if _, err := e.n.Add(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	if len(e.n.Warnings()) != 1 {
		t.Errorf("Warnings = %q", e.n.Warnings())
	}
	ms, err := e.n.List(testCtx(t))
	if err != nil || len(ms) != 1 || ms[0].Key != m.Key {
		t.Errorf("List = %+v, %v; want only %v", ms, err, m.Key)
	}
}

// TestNATPMPListFailsWithoutGateway: List does not answer from the state
// when the gateway is silent; it could not tell a reboot.
func TestNATPMPListFailsWithoutGateway(t *testing.T) {
	e := newNATPMPEnv(t)
	e.fake.silent = true
	if _, err := e.n.List(testCtx(t)); !errors.Is(err, forward.ErrNoGateway) || !strings.HasPrefix(err.Error(), "listing mappings: ") {
		t.Errorf("List = %v; want ErrNoGateway", err)
	}
	if _, err := e.n.ExternalAddr(testCtx(t)); err == nil {
		t.Error("ExternalAddr answered")
	}
}

// TestNATPMPTimeoutBoundedByContext: the library is never handed a zero
// timeout (its two-minute default) nor one past the context's deadline.
func TestNATPMPTimeoutBoundedByContext(t *testing.T) {
	e := newNATPMPEnv(t)
	var got time.Duration
	e.n.dial = func(d time.Duration) natpmpClient { got = d; return e.fake }
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := e.n.ExternalAddr(ctx); err != nil || got <= 0 || got > 200*time.Millisecond {
		t.Errorf("ExternalAddr: %v with timeout %v", err, got)
	}
	cancel()
	if _, err := e.n.ExternalAddr(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("ExternalAddr after cancel = %v", err)
	}
}

func TestNATPMPConforms(t *testing.T) {
	forwardtest.Run(t, forwardtest.Harness{
		New:   func(t *testing.T) forward.Backend { return newNATPMPEnv(t).n },
		Self:  loopback,
		Port:  40000,
		Lease: time.Hour,
	})
}
