package forwardtest

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// RecordsHarness tells RunRecords how to reach a backend that lists from
// its own records (Properties.ListsFromState: NAT-PMP, PCP) and the
// gateway behind it.
type RecordsHarness struct {
	// New starts a gateway with no mappings, and empty records for the
	// runs that talk to it. It is called once per subtest.
	New func(t *testing.T) RecordsGateway
	// Self is the host portfwd runs on; Other is another LAN host, which
	// the suite only names in mappings.
	Self, Other netip.Addr
	// Port is the first of 24 external ports nothing else uses on the
	// gateway.
	Port uint16
	// MaxLease is the longest lease the gateway grants, shorter than
	// forward.PermanentLeaseCap; the suite asks for longer ones.
	MaxLease time.Duration
}

// RecordsGateway is one gateway under test, with its clock and the records
// that the runs talking to it share.
type RecordsGateway interface {
	// Open returns a backend as one run of portfwd opens it, its records
	// read back from where the last run saved them.
	Open(t *testing.T) forward.Backend
	// Restart reboots the gateway: its mappings are lost and its epoch
	// starts again.
	Restart()
	// Silence makes the gateway stop answering.
	Silence()
	// Advance moves the clock of the gateway and of the backends on it.
	Advance(d time.Duration)
	// Has reports whether the gateway holds a mapping on k, whoever made it.
	Has(k forward.Key) bool
	// AddForeign installs m as another client would, unknown to the records.
	AddForeign(t *testing.T, m forward.Mapping)
	// Requests counts the requests the gateway has received.
	Requests() int
}

// RunRecords is the suite for backends whose List answers from their own
// records. It checks what the forward.Backend contract and
// Properties.ListsFromState promise for them: the records outlive a run; an
// expired record is not listed; after a gateway restart nothing is listed
// and the user is told; a mapping made by another client is never listed,
// and never deleted; the lease granted, not the one asked, is what counts;
// external_port: any keeps the port granted; a mapping for another host is
// refused or made as Properties.ThirdParty says. Run forwardtest.Run on
// such a backend too.
func RunRecords(t *testing.T, h RecordsHarness) {
	for _, c := range []struct {
		name string
		run  func(*testing.T, RecordsHarness)
	}{
		{"ListsFromState", recordsListsFromState},
		{"RecordsSurviveReopen", recordsSurviveReopen},
		{"ExpiredNotListed", recordsExpiredNotListed},
		{"RestartForgets", recordsRestartForgets},
		{"RestartNoticedOnAdd", recordsRestartNoticedOnAdd},
		{"ListFailsWithoutGateway", recordsListFailsWithoutGateway},
		{"ForeignNeverListedNorDeleted", recordsForeignNeverListed},
		{"GrantedLease", recordsGrantedLease},
		{"AnyPortKeepsGrant", recordsAnyPortKeepsGrant},
		{"MovedPortIsConflict", recordsMovedPortIsConflict},
		{"OtherHost", recordsOtherHost},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, h) })
	}
}

// mapping is a mapping of the suite's own on port h.Port+offset.
func (h RecordsHarness) mapping(offset uint16, p forward.Protocol, lease time.Duration) forward.Mapping {
	return forward.Mapping{Key: forward.Key{Protocol: p, ExternalPort: h.Port + offset},
		InternalHost: h.Self, InternalPort: h.Port + offset, Description: forward.Tag("t", "records"),
		Lease: lease, Enabled: true}
}

// foreign installs another client's mapping on port h.Port+offset, as the
// gateway's own, and returns it.
func (h RecordsHarness) foreign(t *testing.T, g RecordsGateway, offset uint16, p forward.Protocol) forward.Mapping {
	m := h.mapping(offset, p, time.Hour)
	m.InternalHost, m.Description = h.Other, "someone else"
	g.AddForeign(t, m)
	return m
}

// lease is a lease the gateway grants in full.
func (h RecordsHarness) lease() time.Duration { return min(time.Hour, h.MaxLease/2) }

// MustAdd adds m on b and returns the mapping granted, or ends the test.
func MustAdd(t *testing.T, b forward.Backend, m forward.Mapping) forward.Mapping {
	t.Helper()
	got, err := b.Add(ctx(t), m)
	if err != nil {
		t.Fatalf("Add %s: %v", m.Key, err)
	}
	return got
}

func recordsList(t *testing.T, b forward.Backend) []forward.Mapping {
	t.Helper()
	ms, err := b.List(ctx(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return ms
}

func recordsKeys(ms []forward.Mapping) []forward.Key {
	out := make([]forward.Key, len(ms))
	for i, m := range ms {
		out[i] = m.Key
	}
	slices.SortFunc(out, forward.Key.Compare)
	return out
}

func recordsListsFromState(t *testing.T, h RecordsHarness) {
	p := h.New(t).Open(t).Properties()
	if !p.ListsFromState || p.PermanentLeases {
		t.Errorf("Properties = %+v; want ListsFromState and no permanent leases", p)
	}
}

// recordsSurviveReopen: what one run made, the next lists with the
// lease left, and can delete.
func recordsSurviveReopen(t *testing.T, h RecordsHarness) {
	g := h.New(t)
	b := g.Open(t)
	tcp, udp := h.mapping(0, forward.TCP, h.lease()), h.mapping(0, forward.UDP, h.lease())
	granted := MustAdd(t, b, tcp).Lease
	MustAdd(t, b, udp)
	g.Advance(10 * time.Minute)
	next := g.Open(t)
	ms := recordsList(t, next)
	want := tcp
	want.Lease = granted - 10*time.Minute
	if i := slices.IndexFunc(ms, func(m forward.Mapping) bool { return m.Key == tcp.Key }); len(ms) != 2 || i < 0 || ms[i] != want {
		t.Fatalf("List in the next run = %+v; want %+v and %v", ms, want, udp.Key)
	}
	if err := next.Delete(ctx(t), tcp); err != nil || g.Has(tcp.Key) {
		t.Fatalf("Delete in the next run: %v; still on the gateway: %v", err, g.Has(tcp.Key))
	}
	if got := recordsKeys(recordsList(t, g.Open(t))); !slices.Equal(got, []forward.Key{udp.Key}) {
		t.Errorf("List in a third run = %v; want only %v", got, udp.Key)
	}
}

func recordsExpiredNotListed(t *testing.T, h RecordsHarness) {
	g := h.New(t)
	b := g.Open(t)
	granted := MustAdd(t, b, h.mapping(1, forward.UDP, time.Minute))
	g.Advance(granted.Lease - 500*time.Millisecond)
	if ms := recordsList(t, b); len(ms) != 0 {
		t.Errorf("List with half a second of the lease left = %+v; want nothing (never a zero, permanent, lease)", ms)
	}
}

// recordsRestartForgets: a run after a gateway restart lists nothing, so the
// planner re-creates every mapping, and says why once.
func recordsRestartForgets(t *testing.T, h RecordsHarness) {
	g := h.New(t)
	b := g.Open(t)
	MustAdd(t, b, h.mapping(0, forward.TCP, h.lease()))
	MustAdd(t, b, h.mapping(0, forward.UDP, h.lease()))
	g.Advance(10 * time.Minute)
	g.Restart()
	g.Advance(30 * time.Second)
	next := g.Open(t)
	if ms := recordsList(t, next); len(ms) != 0 {
		t.Fatalf("List after the restart = %+v; want nothing", ms)
	}
	w := forward.WarningsOf(next)
	if len(w) != 1 || !strings.Contains(w[0], "restarted") {
		t.Errorf("Warnings = %q; want one saying the gateway restarted", w)
	}
	if w := forward.WarningsOf(next); len(w) != 0 {
		t.Errorf("Warnings a second time = %q; want them forgotten", w)
	}
	third := g.Open(t)
	if ms, w := recordsList(t, third), forward.WarningsOf(third); len(ms) != 0 || len(w) != 0 {
		t.Errorf("a later run lists %+v, warns %q; want nothing: the records were dropped", ms, w)
	}
}

// recordsRestartNoticedOnAdd: the epoch of a mapping's answer is checked too;
// the new mapping stays recorded, the lost ones go.
func recordsRestartNoticedOnAdd(t *testing.T, h RecordsHarness) {
	g := h.New(t)
	b := g.Open(t)
	MustAdd(t, b, h.mapping(2, forward.TCP, h.lease()))
	g.Restart()
	g.Advance(time.Minute)
	m := MustAdd(t, b, h.mapping(3, forward.TCP, h.lease()))
	if w := forward.WarningsOf(b); len(w) != 1 || !strings.Contains(w[0], "restarted") {
		t.Errorf("Warnings = %q; want one saying the gateway restarted", w)
	}
	if got := recordsKeys(recordsList(t, b)); !slices.Equal(got, []forward.Key{m.Key}) {
		t.Errorf("List = %v; want only %v", got, m.Key)
	}
}

// recordsListFailsWithoutGateway: List never answers from the records alone,
// which could not tell a restart.
func recordsListFailsWithoutGateway(t *testing.T, h RecordsHarness) {
	g := h.New(t)
	b := g.Open(t)
	MustAdd(t, b, h.mapping(4, forward.TCP, h.lease()))
	g.Silence()
	if ms, err := b.List(ctx(t)); !forward.IsSilence(err) {
		t.Errorf("List of a silent gateway = %+v, %v; want an error that says it did not answer", ms, err)
	}
}

// recordsForeignNeverListed: another client's mapping is not portfwd's: not
// listed, and a Delete on its key sends nothing.
func recordsForeignNeverListed(t *testing.T, h RecordsHarness) {
	g := h.New(t)
	b := g.Open(t)
	foreign := h.foreign(t, g, 5, forward.TCP)
	if ms := recordsList(t, b); len(ms) != 0 {
		t.Errorf("List = %+v; want nothing: the records hold no mapping", ms)
	}
	sent := g.Requests()
	if err := b.Delete(ctx(t), foreign); err != nil || g.Requests() != sent || !g.Has(foreign.Key) {
		t.Errorf("Delete of an unrecorded mapping: %v, %d requests sent, still there %v; want nil, none, kept",
			err, g.Requests()-sent, g.Has(foreign.Key))
	}
}

// recordsGrantedLease: a permanent lease is asked as a finite one and the
// grant is what Add returns and List counts down from.
func recordsGrantedLease(t *testing.T, h RecordsHarness) {
	g := h.New(t)
	b := g.Open(t)
	for i, asked := range []time.Duration{0, 2 * h.MaxLease} {
		got := MustAdd(t, b, h.mapping(6+uint16(i), forward.TCP, asked))
		if got.Lease != h.MaxLease {
			t.Errorf("Add with lease %v granted %v; want the gateway's %v", asked, got.Lease, h.MaxLease)
		}
	}
	g.Advance(time.Minute)
	for _, m := range recordsList(t, b) {
		if m.Lease != h.MaxLease-time.Minute {
			t.Errorf("List has %v with %v left; want %v", m.Key, m.Lease, h.MaxLease-time.Minute)
		}
	}
}

// recordsAnyPortKeepsGrant: with external_port: any, a taken port makes the
// gateway grant another, which is kept, returned and listed, and renewed
// where it is.
func recordsAnyPortKeepsGrant(t *testing.T, h RecordsHarness) {
	g := h.New(t)
	b := g.Open(t)
	h.foreign(t, g, 8, forward.TCP)
	m := h.mapping(8, forward.TCP, h.lease())
	m.AnyExternal = true
	got := MustAdd(t, b, m)
	if got.ExternalPort == m.ExternalPort || !g.Has(got.Key) || !g.Has(m.Key) {
		t.Fatalf("Add = %v; want another port, held, and the taken one left to its holder", got)
	}
	listed := recordsList(t, b)
	if len(listed) != 1 || listed[0].Key != got.Key || listed[0].AnyExternal {
		t.Fatalf("List = %+v; want the mapping on %v, as observed", listed, got.Key)
	}
	renew := m
	renew.ExternalPort = got.ExternalPort
	if again := MustAdd(t, b, renew); again.Key != got.Key || !slices.Equal(recordsKeys(recordsList(t, b)), []forward.Key{got.Key}) {
		t.Errorf("renewal = %v; want it kept on %v", again, got.Key)
	}
}

// recordsMovedPortIsConflict: for a fixed port, a taken port is a conflict;
// the grant elsewhere is given back and not recorded.
func recordsMovedPortIsConflict(t *testing.T, h RecordsHarness) {
	g := h.New(t)
	b := g.Open(t)
	h.foreign(t, g, 12, forward.UDP)
	m := h.mapping(12, forward.UDP, h.lease())
	_, err := b.Add(ctx(t), m)
	var ce *forward.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, forward.ErrConflict) {
		t.Fatalf("Add on a taken port = %v; want a *forward.ConflictError", err)
	}
	for p := m.ExternalPort + 1; p < h.Port+24; p++ {
		if g.Has(forward.Key{Protocol: forward.UDP, ExternalPort: p}) {
			t.Errorf("the gateway keeps a mapping on udp/%d; the moved grant should be given back", p)
		}
	}
	if ms := recordsList(t, b); len(ms) != 0 || !g.Has(m.Key) {
		t.Errorf("List = %+v, holder kept %v; want nothing recorded and the holder untouched", ms, g.Has(m.Key))
	}
}

// recordsOtherHost: a mapping for another host is made when the protocol can
// (ThirdPartyYes), refused as not authorized with nothing sent when it
// cannot (ThirdPartyNo).
func recordsOtherHost(t *testing.T, h RecordsHarness) {
	g := h.New(t)
	b := g.Open(t)
	m := h.mapping(13, forward.TCP, h.lease())
	m.InternalHost = h.Other
	sent := g.Requests()
	got, err := b.Add(ctx(t), m)
	switch b.Properties().ThirdParty {
	case forward.ThirdPartyNo:
		if !errors.Is(err, forward.ErrNotAuthorized) || g.Requests() != sent || !strings.Contains(err.Error(), h.Other.String()) {
			t.Errorf("Add for %v = %v, %d requests; want ErrNotAuthorized naming the host, nothing sent", h.Other, err, g.Requests()-sent)
		}
	case forward.ThirdPartyYes:
		if err != nil || got.InternalHost != h.Other || !g.Has(m.Key) {
			t.Fatalf("Add for %v = %v, %v; want it made", h.Other, got, err)
		}
		if ms := recordsList(t, b); len(ms) != 1 || ms[0].InternalHost != h.Other {
			t.Errorf("List = %+v; want the mapping to %v", ms, h.Other)
		}
		if err := b.Delete(ctx(t), m); err != nil || g.Has(m.Key) {
			t.Errorf("Delete = %v, still there %v", err, g.Has(m.Key))
		}
	}
}
