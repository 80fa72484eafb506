package forwardtest

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// Harness tells Run how to reach one backend under test.
type Harness struct {
	// New returns a backend talking to a gateway with no mappings owned by
	// the test. It is called once per subtest.
	New func(t *testing.T) forward.Backend
	// Self is an internal host the gateway accepts mappings for.
	Self netip.Addr
	// Other is another LAN host, which a backend whose protocol maps only
	// for the asking host (Properties.ThirdParty == ThirdPartyNo) must
	// refuse. The zero Addr skips that check.
	Other netip.Addr
	// Port is the first of three free external ports the suite may use.
	Port uint16
	// Lease is the lease to request; zero means permanent.
	Lease time.Duration
	// AddForeign installs m as another client would, so the suite can check
	// conflicts. Nil skips those checks.
	AddForeign func(t *testing.T, m forward.Mapping)
}

// Run is the conformance suite every forward.Backend passes. It checks the
// rules written on the Backend interface, and that what Properties claims
// is true, against a live gateway (or a fake that speaks its wire
// protocol).
func Run(t *testing.T, h Harness) {
	t.Run("AddListDelete", func(t *testing.T) { testAddListDelete(t, h) })
	t.Run("AddTwiceRefreshes", func(t *testing.T) { testAddTwice(t, h) })
	t.Run("DeleteAbsent", func(t *testing.T) { testDeleteAbsent(t, h) })
	t.Run("ExternalAddr", func(t *testing.T) { testExternalAddr(t, h) })
	t.Run("Properties", func(t *testing.T) { testProperties(t, h) })
	t.Run("GrantedLease", func(t *testing.T) { testGrantedLease(t, h) })
	t.Run("PermanentLease", func(t *testing.T) { testPermanentLease(t, h) })
	t.Run("Canceled", func(t *testing.T) { testCanceled(t, h) })
	t.Run("Find", func(t *testing.T) { testFind(t, h) })
	if h.Other.IsValid() {
		t.Run("ThirdParty", func(t *testing.T) { testThirdParty(t, h) })
	}
	if h.AddForeign != nil {
		t.Run("ConflictNamesHolder", func(t *testing.T) { testConflict(t, h) })
		t.Run("ListsForeign", func(t *testing.T) { testListsForeign(t, h) })
	}
}

func (h Harness) mapping(offset uint16, p forward.Protocol) forward.Mapping {
	return forward.Mapping{Key: forward.Key{Protocol: p, ExternalPort: h.Port + offset},
		InternalHost: h.Self, InternalPort: h.Port + offset, Description: forward.Tag("t", "conformance"),
		Lease: h.Lease, Enabled: true}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func find(t *testing.T, b forward.Backend, k forward.Key) (forward.Mapping, int) {
	t.Helper()
	ms, err := b.List(ctx(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var got forward.Mapping
	n := 0
	for _, m := range ms {
		if m.Key == k {
			got, n = m, n+1
		}
	}
	return got, n
}

func testAddListDelete(t *testing.T, h Harness) {
	b := h.New(t)
	for _, p := range []forward.Protocol{forward.TCP, forward.UDP} {
		want := h.mapping(0, p)
		granted, err := b.Add(ctx(t), want)
		if err != nil {
			t.Fatalf("Add %s: %v", want.Key, err)
		}
		if granted.Key != want.Key || granted.InternalHost != want.InternalHost {
			t.Errorf("Add granted %v, want %v", granted, want)
		}
		got, n := find(t, b, want.Key)
		if n != 1 || got.InternalHost != want.InternalHost || got.InternalPort != want.InternalPort ||
			got.Description != want.Description || !got.Enabled || got.Protocol != p {
			t.Errorf("List after Add: %d entries for %s, got %+v, want %+v", n, want.Key, got, want)
		}
		if err := b.Delete(ctx(t), want); err != nil {
			t.Fatalf("Delete %s: %v", want.Key, err)
		}
		if _, n := find(t, b, want.Key); n != 0 {
			t.Errorf("List after Delete still has %s", want.Key)
		}
	}
}

func testAddTwice(t *testing.T, h Harness) {
	b := h.New(t)
	want := h.mapping(1, forward.TCP)
	for i := 0; i < 2; i++ {
		if _, err := b.Add(ctx(t), want); err != nil {
			t.Fatalf("Add #%d: %v", i+1, err)
		}
	}
	if _, n := find(t, b, want.Key); n != 1 {
		t.Errorf("after two Adds List has %d entries for %s, want 1", n, want.Key)
	}
	if err := b.Delete(ctx(t), want); err != nil {
		t.Fatalf("Delete: %v", err)
	}
}

func testDeleteAbsent(t *testing.T, h Harness) {
	b := h.New(t)
	if err := b.Delete(ctx(t), h.mapping(2, forward.UDP)); err != nil {
		t.Errorf("Delete of an absent mapping: %v, want nil", err)
	}
}

func testExternalAddr(t *testing.T, h Harness) {
	addr, err := h.New(t).ExternalAddr(ctx(t))
	if err != nil || !addr.IsValid() {
		t.Errorf("ExternalAddr = %v, %v; want a valid address", addr, err)
	}
}

func testProperties(t *testing.T, h Harness) {
	p := h.New(t).Properties()
	if p.Name == "" || p.Gateway == "" || len(p.Protocols) == 0 {
		t.Errorf("Properties = %+v; want Name, Gateway and Protocols set", p)
	}
	if p.ThirdParty < forward.ThirdPartyNo || p.ThirdParty > forward.ThirdPartyYes {
		t.Errorf("Properties.ThirdParty = %d; want one of the ThirdParty constants", p.ThirdParty)
	}
}

// testGrantedLease: Add returns the lease granted, and List then reports
// what is left of it: never more, and permanent only when granted so.
func testGrantedLease(t *testing.T, h Harness) {
	b := h.New(t)
	want := h.mapping(0, forward.UDP)
	granted, err := b.Add(ctx(t), want)
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	defer b.Delete(ctx(t), want)
	if h.Lease > 0 && (granted.Lease <= 0 && !b.Properties().PermanentLeases) {
		t.Errorf("Add of a %v lease granted %v on a backend without permanent leases", h.Lease, granted.Lease)
	}
	got, n := find(t, b, want.Key)
	switch {
	case n != 1:
		t.Fatalf("List has %d entries for %s after Add", n, want.Key)
	case granted.Lease == 0 && got.Lease != 0:
		t.Errorf("granted a permanent lease, but List reports %v", got.Lease)
	case granted.Lease > 0 && (got.Lease <= 0 || got.Lease > granted.Lease+time.Second):
		t.Errorf("granted %v, but List reports %v left", granted.Lease, got.Lease)
	}
}

// testPermanentLease: a zero lease is granted permanent only where
// Properties.PermanentLeases says it may be; elsewhere the finite lease
// granted in its place is returned, so the planner renews it.
func testPermanentLease(t *testing.T, h Harness) {
	b := h.New(t)
	want := h.mapping(1, forward.UDP)
	want.Lease = 0
	granted, err := b.Add(ctx(t), want)
	if err != nil {
		t.Fatalf("Add with a permanent lease: %v", err)
	}
	defer b.Delete(ctx(t), want)
	if granted.Lease == 0 && !b.Properties().PermanentLeases {
		t.Errorf("granted a permanent lease, but Properties.PermanentLeases is false")
	}
	if granted.Lease < 0 {
		t.Errorf("granted lease %v", granted.Lease)
	}
}

// testCanceled: a cancelled context fails List, Add and Delete with the
// context's error, and Add leaves nothing behind.
func testCanceled(t *testing.T, h Harness) {
	b := h.New(t)
	c, cancel := context.WithCancel(context.Background())
	cancel()
	m := h.mapping(2, forward.TCP)
	if _, err := b.List(c); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a cancelled context: %v; want context.Canceled", err)
	}
	if _, err := b.Add(c, m); !errors.Is(err, context.Canceled) {
		t.Errorf("Add with a cancelled context: %v; want context.Canceled", err)
	}
	if err := b.Delete(c, m); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a cancelled context: %v; want context.Canceled", err)
	}
	if _, n := find(t, b, m.Key); n != 0 {
		t.Errorf("Add with a cancelled context left %s on the gateway", m.Key)
		b.Delete(ctx(t), m)
	}
}

// testFind: a backend that can look one mapping up (forward.Finder) finds
// what List shows, and reports an absent key as not found, without error.
func testFind(t *testing.T, h Harness) {
	b := h.New(t)
	f, ok := forward.As[forward.Finder](b)
	if !ok {
		t.Skip("the backend has no forward.Finder")
	}
	m := MustAdd(t, b, h.mapping(0, forward.TCP))
	listed, _ := find(t, b, m.Key)
	got, found, err := f.Find(ctx(t), m.Key)
	if err != nil || !found || got.Key != listed.Key || got.InternalHost != listed.InternalHost ||
		got.InternalPort != listed.InternalPort || got.Description != listed.Description || got.Enabled != listed.Enabled {
		t.Errorf("Find %s = %+v, %v, %v; List has %+v", m.Key, got, found, err, listed)
	}
	if err := b.Delete(ctx(t), m); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, k := range []forward.Key{m.Key, h.mapping(2, forward.UDP).Key} {
		if got, found, err := f.Find(ctx(t), k); err != nil || found {
			t.Errorf("Find of the absent %s = %+v, %v, %v; want not found, no error", k, got, found, err)
		}
	}
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := f.Find(c, m.Key); !errors.Is(err, context.Canceled) {
		t.Errorf("Find with a cancelled context: %v; want context.Canceled", err)
	}
}

// testThirdParty: a backend whose protocol maps only for the asking host
// refuses another host with ErrNotAuthorized, and says so in Properties.
func testThirdParty(t *testing.T, h Harness) {
	b := h.New(t)
	m := h.mapping(2, forward.UDP)
	m.InternalHost = h.Other
	_, err := b.Add(ctx(t), m)
	if err == nil {
		defer b.Delete(ctx(t), m)
	}
	switch b.Properties().ThirdParty {
	case forward.ThirdPartyNo:
		if !errors.Is(err, forward.ErrNotAuthorized) {
			t.Errorf("Add for another host: %v; want ErrNotAuthorized, as ThirdPartyNo promises", err)
		}
	case forward.ThirdPartyYes:
		if err != nil && !errors.Is(err, forward.ErrNotAuthorized) {
			t.Errorf("Add for another host: %v; want success, or ErrNotAuthorized when the router forbids it", err)
		}
	}
}

// testListsForeign: a backend that lists the gateway lists a mapping
// someone else made; one that lists from its records never does.
func testListsForeign(t *testing.T, h Harness) {
	b := h.New(t)
	foreign := h.mapping(1, forward.TCP)
	foreign.Description = "someone else"
	h.AddForeign(t, foreign)
	_, n := find(t, b, foreign.Key)
	if fromState := b.Properties().ListsFromState; fromState && n != 0 {
		t.Errorf("a backend listing from its records lists a foreign mapping")
	} else if !fromState && n != 1 {
		t.Errorf("List has %d entries for the foreign %s; a backend that lists the gateway shows it", n, foreign.Key)
	}
}

func testConflict(t *testing.T, h Harness) {
	b := h.New(t)
	foreign := h.mapping(2, forward.TCP)
	foreign.Description = "someone else"
	h.AddForeign(t, foreign)
	want := h.mapping(2, forward.TCP)
	want.InternalPort++
	_, err := b.Add(ctx(t), want)
	var ce *forward.ConflictError
	if !errors.Is(err, forward.ErrConflict) || !errors.As(err, &ce) {
		t.Fatalf("Add over a foreign mapping: %v; want a *forward.ConflictError", err)
	}
	if b.Properties().ListsFromState {
		// NAT-PMP and PCP never say who holds a port, and a backend
		// listing from its records cannot see it: the conflict is all.
		return
	}
	if ce.Holder.Description != "someone else" {
		t.Errorf("conflict holder = %+v; want the foreign mapping", ce.Holder)
	}
	if got, _ := find(t, b, want.Key); got.Description != "someone else" {
		t.Errorf("foreign mapping changed to %+v", got)
	}
}
