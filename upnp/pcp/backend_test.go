package pcp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// other is a LAN host that is never dialled: mappings only name it.
var other = netip.MustParseAddr("192.168.77.11")

// opener is OpenNATPMP or OpenPCP.
type opener func(context.Context, netip.Addr, *Records, Options) (*Backend, error)

// protocols are the two protocols every shared test runs over.
var protocols = []struct {
	name string
	open opener
}{{"natpmp", OpenNATPMP}, {"pcp", OpenPCP}}

// env is a backend on a fake gateway, with its records directory.
type env struct {
	fake    *fakeGateway
	fake6   *fakeGateway // the gateway's PCP server on IPv6 (::1), or nil
	dir     string
	open    opener
	timeout time.Duration
	b       *Backend
}

func newEnv(t *testing.T, open opener) *env {
	e := &env{fake: newFakeGateway(t), dir: t.TempDir(), open: open}
	e.b = e.reopen(t)
	return e
}

// reopen opens a backend on the same gateway with the records read back
// from disk, as the next run (or one after a kill) sees them.
func (e *env) reopen(t *testing.T) *Backend {
	t.Helper()
	rec, err := OpenRecords(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	opts := e.fake.options()
	opts.Timeout = e.timeout
	if e.fake6 != nil {
		opts.Gateway6, opts.port6 = loopback6, e.fake6.options().port
	}
	b, err := e.open(testCtx(t), loopback, rec, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recorded is the record on k in the file on disk.
func (e *env) recorded(t *testing.T, k forward.Key) (entry, bool) {
	t.Helper()
	rec, err := OpenRecords(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	return rec.gateway(e.b.Properties().Name, loopback).find(k)
}

// mapping is a mapping of this host's external and internal port.
func mapping(p forward.Protocol, port uint16, lease time.Duration) forward.Mapping {
	return forward.Mapping{Key: forward.Key{Protocol: p, ExternalPort: port}, InternalHost: loopback,
		InternalPort: port, Description: (forward.LegacyTagPrefix + "mc"), Lease: lease, Enabled: true}
}

func key(p forward.Protocol, port uint16) forward.Key {
	return forward.Key{Protocol: p, ExternalPort: port}
}

// primed returns b once a mapping has been made and deleted, so that a
// PCP backend knows the external address, as after any run that mapped.
func primed(t *testing.T, b *Backend) *Backend {
	t.Helper()
	m := forwardtest.MustAdd(t, b, mapping(forward.TCP, 40003, time.Minute))
	if err := b.Delete(testCtx(t), m); err != nil {
		t.Fatalf("priming: %v", err)
	}
	return b
}

func TestConforms(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			var e *env // the subtest's, for AddForeign
			forwardtest.Run(t, forwardtest.Harness{
				New: func(t *testing.T) forward.Backend {
					e = newEnv(t, p.open)
					return primed(t, e.b)
				},
				Self:  loopback,
				Other: other,
				Port:  40000,
				Lease: time.Hour,
				AddForeign: func(_ *testing.T, m forward.Mapping) {
					m.InternalHost = other // another LAN host holds the port
					e.fake.put(m)
				},
			})
		})
	}
}

// recordsGateway is the fake gateway and records directory behind
// forwardtest.RunRecords.
type recordsGateway struct{ *env }

func (g recordsGateway) Open(t *testing.T) forward.Backend { return g.reopen(t) }
func (g recordsGateway) Restart()                          { g.fake.reboot() }
func (g recordsGateway) Silence()                          { g.fake.set(func(f *fakeGateway) { f.silent = true }) }
func (g recordsGateway) Advance(d time.Duration)           { g.fake.clock.Advance(d) }
func (g recordsGateway) Has(k forward.Key) bool            { return g.fake.has(k) }
func (g recordsGateway) Requests() int                     { return g.fake.count() }

func (g recordsGateway) AddForeign(_ *testing.T, m forward.Mapping) { g.fake.put(m) }

func TestRecordsSuite(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			forwardtest.RunRecords(t, forwardtest.RecordsHarness{
				New: func(t *testing.T) forwardtest.RecordsGateway {
					e := &env{fake: newFakeGateway(t), dir: t.TempDir(), open: p.open, timeout: 500 * time.Millisecond}
					e.fake.set(func(f *fakeGateway) { f.maxLife = 86400 })
					return recordsGateway{e}
				},
				Self: loopback, Other: other, Port: 41000, MaxLease: 24 * time.Hour,
			})
		})
	}
}

func TestProperties(t *testing.T) {
	for _, tc := range []struct {
		open  opener
		name  string
		proto string
		third forward.ThirdParty
	}{
		{OpenNATPMP, "natpmp", "NAT-PMP (RFC 6886)", forward.ThirdPartyNo},
		{OpenPCP, "pcp", "PCP (RFC 6887)", forward.ThirdPartyYes},
	} {
		e := newEnv(t, tc.open)
		want := forward.Properties{Name: tc.name, Gateway: tc.name + "://" + e.b.server.String(),
			Protocols: []string{tc.proto}, ListsFromState: true, ThirdParty: tc.third}
		if got := e.b.Properties(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Properties = %+v, want %+v", got, want)
		}
		if e.b.LocalAddr() != loopback || forward.SelfOf(e.b) != loopback {
			t.Errorf("%s: LocalAddr = %v, want %v", tc.name, e.b.LocalAddr(), loopback)
		}
	}
	if _, err := OpenPCP(testCtx(t), loopback, nil, Options{}); err == nil {
		t.Error("OpenPCP accepted no records")
	}
	if _, err := OpenNATPMP(testCtx(t), netip.MustParseAddr("fe80::1"), MemoryRecords(), Options{}); err == nil ||
		!strings.Contains(err.Error(), "IPv4 only") {
		t.Errorf("OpenNATPMP of an IPv6 gateway: %v", err)
	}
}

// TestAddListDeleteOnDisk: every change is in the file on disk before the
// call returns, and List answers from it with the lease left.
func TestAddListDeleteOnDisk(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			e := newEnv(t, p.open)
			m := mapping(forward.TCP, 25565, time.Hour)
			if got, err := e.b.Add(testCtx(t), m); err != nil || got.Lease != time.Hour || got.Key != m.Key {
				t.Fatalf("Add = %+v, %v; want %v with a 1h lease", got, err, m)
			}
			r, ok := e.recorded(t, m.Key)
			if !ok || r.GrantedPort != 25565 || !r.Expires.Equal(e.fake.clock.Now().Add(time.Hour)) || r.Description != m.Description {
				t.Fatalf("record on disk after Add: %+v, %v", r, ok)
			}
			e.fake.clock.Advance(10 * time.Minute)
			want := m
			want.Lease = 50 * time.Minute
			if ms, err := e.b.List(testCtx(t)); err != nil || len(ms) != 1 || ms[0] != want {
				t.Fatalf("List = %+v, %v; want [%+v]", ms, err, want)
			}
			if err := e.b.Delete(testCtx(t), m); err != nil {
				t.Fatal(err)
			}
			if _, ok := e.recorded(t, m.Key); ok || e.fake.has(m.Key) {
				t.Errorf("after Delete: recorded %v, on the gateway %v", ok, e.fake.has(m.Key))
			}
		})
	}
}

// TestRestartWarning pins the warning's words, and that a second call has
// nothing more to say.
func TestRestartWarning(t *testing.T) {
	for _, tc := range []struct {
		open  opener
		title string
	}{{OpenNATPMP, "NAT-PMP"}, {OpenPCP, "PCP"}} {
		e := newEnv(t, tc.open)
		forwardtest.MustAdd(t, e.b, mapping(forward.UDP, 19132, time.Hour))
		e.fake.clock.Advance(10 * time.Minute)
		// A renewal writes the epoch it saw (a List that changes nothing
		// would not: TestNothingChangedWritesNothing).
		forwardtest.MustAdd(t, e.reopen(t), mapping(forward.UDP, 19132, time.Hour))
		e.fake.clock.Advance(10 * time.Minute)
		e.fake.reboot()
		e.fake.clock.Advance(30 * time.Second)
		b := e.reopen(t)
		want := "the gateway restarted (" + tc.title + " epoch went from 4200 to 30): every mapping will be re-created"
		if w := b.Warnings(); len(w) != 1 || w[0] != want {
			t.Errorf("Warnings = %q, want [%q]", w, want)
		}
		if w := b.Warnings(); len(w) != 0 {
			t.Errorf("Warnings again = %q, want none", w)
		}
	}
}

// TestPermanentLease: a permanent lease is asked as a week, never as 0 (a
// deletion), and the grant is what is recorded.
func TestPermanentLease(t *testing.T) {
	for _, p := range protocols {
		e := newEnv(t, p.open)
		e.fake.set(func(f *fakeGateway) { f.maxLife = 86400 })
		m := mapping(forward.TCP, 25565, 0)
		if got, err := e.b.Add(testCtx(t), m); err != nil || got.Lease != 24*time.Hour {
			t.Fatalf("%s: Add = %+v, %v; want the granted day", p.name, got, err)
		}
		if req := e.fake.last(1); !strings.Contains(fmt.Sprintf("%x", req), "00093a80") {
			t.Errorf("%s: request %x does not ask 604800 s", p.name, req)
		}
		if r, _ := e.recorded(t, m.Key); !r.Expires.Equal(e.fake.clock.Now().Add(24 * time.Hour)) {
			t.Errorf("%s: recorded expiry %v", p.name, r.Expires)
		}
	}
	if got := seconds(1500 * time.Millisecond); got != 2 {
		t.Errorf("seconds(1.5s) = %d, want 2", got)
	}
}

// TestOpen: Open succeeds on any answer, a refusal too, and fails as
// silence — forward.IsSilence — when the gateway does not answer or
// answers the other protocol.
func TestOpen(t *testing.T) {
	for _, tc := range []struct {
		name  string
		open  opener
		fault func(f *fakeGateway)
		says  string // "": Open succeeds
	}{
		{"natpmp refuses", OpenNATPMP, func(f *fakeGateway) { f.natpmpExtCode = NATPMPNotAuthorized }, ""},
		{"natpmp has no WAN", OpenNATPMP, func(f *fakeGateway) { f.natpmpExtCode = NATPMPNetworkFailure }, ""},
		{"pcp refuses", OpenPCP, func(f *fakeGateway) { f.pcpCode = NotAuthorized }, ""},
		{"natpmp to a PCP-only gateway", OpenNATPMP, func(f *fakeGateway) { f.natpmpOff = true }, "try backend pcp"},
		{"pcp to a NAT-PMP-only gateway", OpenPCP, func(f *fakeGateway) { f.pcpOff = true }, "NAT-PMP (version 0, RFC 6886) only: it does not speak PCP; try backend natpmp"},
		{"natpmp silent", OpenNATPMP, func(f *fakeGateway) { f.silent = true }, "NAT-PMP did not answer at 127.0.0.1:"},
		{"pcp silent", OpenPCP, func(f *fakeGateway) { f.silent = true }, "(is PCP switched off on the router?); try backend natpmp or upnp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeGateway(t)
			f.set(tc.fault)
			opts := f.options()
			opts.Timeout = 300 * time.Millisecond
			b, err := tc.open(testCtx(t), loopback, MemoryRecords(), opts)
			if tc.says == "" {
				if err != nil || b == nil {
					t.Fatalf("Open = %v; want it to succeed: the gateway answered", err)
				}
				return
			}
			if !forward.IsSilence(err) || !errors.Is(err, forward.ErrNoGateway) || !strings.Contains(err.Error(), tc.says) || b != nil {
				t.Errorf("Open = %v; want silence saying %q", err, tc.says)
			}
		})
	}
}

// TestSilenceMessage: the default timeout, and the message that says what
// to do.
func TestSilenceMessage(t *testing.T) {
	e := newEnv(t, OpenNATPMP)
	e.fake.set(func(f *fakeGateway) { f.silent = true })
	_, err := e.b.List(testCtx(t))
	want := fmt.Sprintf("listing mappings: NAT-PMP did not answer at %s within 1s (is NAT-PMP switched off on the router?); try backend upnp", e.b.server)
	if err == nil || err.Error() != want || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("List = %v\nwant %s", err, want)
	}
	if _, err := e.b.ExternalAddr(testCtx(t)); !errors.Is(err, forward.ErrNoGateway) {
		t.Errorf("ExternalAddr of a silent gateway = %v", err)
	}
}

// TestContextDeadlineWins: a context deadline sooner than the timeout
// bounds the request, and the message says how long was waited.
func TestContextDeadlineWins(t *testing.T) {
	e := newEnv(t, OpenPCP)
	e.fake.set(func(f *fakeGateway) { f.silent = true })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.b.Add(ctx, mapping(forward.TCP, 25565, time.Hour))
	if took := time.Since(start); took > time.Second || !forward.IsSilence(err) || !strings.Contains(err.Error(), "ms (is PCP switched off") {
		t.Errorf("Add = %v after %v; want silence within the context's 300ms", err, took)
	}
}

// TestGrantOfNothing: a success that grants no lifetime (it would read as
// permanent) or no port is an error, and nothing is recorded.
func TestGrantOfNothing(t *testing.T) {
	for _, tc := range []struct {
		layout string
		says   string
	}{
		{`00 82 0000 00000e10 63dd 63dd 00000000`, "granted no lifetime"},
		{`00 82 0000 00000e10 63dd 0000 00000e10`, "granted no external port"},
	} {
		s := newRawServer(t, func(_ int, req []byte) [][]byte {
			if req[1] == natpmpOpExternal {
				return [][]byte{unhex(t, `00 80 0000 00000e10 323c4601`)}
			}
			return [][]byte{unhex(t, tc.layout)}
		})
		opts := Options{port: s.addr().Port()}
		b, err := OpenNATPMP(testCtx(t), loopback, MemoryRecords(), opts)
		if err != nil {
			t.Fatal(err)
		}
		m := mapping(forward.TCP, 25565, time.Hour)
		if _, err := b.Add(testCtx(t), m); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("Add = %v; want it to say %q", err, tc.says)
		}
		if ms, _ := b.List(testCtx(t)); len(ms) != 0 {
			t.Errorf("List = %+v; want nothing recorded", ms)
		}
	}
}
