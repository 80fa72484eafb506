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
	// Port is the first of three free external ports the suite may use.
	Port uint16
	// Lease is the lease to request; zero means permanent.
	Lease time.Duration
	// AddForeign installs m as another client would, so the suite can check
	// conflicts. Nil skips those checks.
	AddForeign func(t *testing.T, m forward.Mapping)
}

// Run is the conformance suite every forward.Backend passes. It checks the
// rules written on the Backend interface against a live gateway (or a fake
// that speaks its wire protocol).
func Run(t *testing.T, h Harness) {
	t.Run("AddListDelete", func(t *testing.T) { testAddListDelete(t, h) })
	t.Run("AddTwiceRefreshes", func(t *testing.T) { testAddTwice(t, h) })
	t.Run("DeleteAbsent", func(t *testing.T) { testDeleteAbsent(t, h) })
	t.Run("ExternalAddr", func(t *testing.T) { testExternalAddr(t, h) })
	t.Run("Properties", func(t *testing.T) { testProperties(t, h) })
	if h.AddForeign != nil {
		t.Run("ConflictNamesHolder", func(t *testing.T) { testConflict(t, h) })
	}
}

func (h Harness) mapping(offset uint16, p forward.Protocol) forward.Mapping {
	return forward.Mapping{Key: forward.Key{Protocol: p, ExternalPort: h.Port + offset},
		InternalHost: h.Self, InternalPort: h.Port + offset, Description: forward.Tag("conformance"),
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
	if p.Name == "" || p.Gateway == "" {
		t.Errorf("Properties = %+v; want Name and Gateway set", p)
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
	if ce.Holder.Description != "someone else" {
		t.Errorf("conflict holder = %+v; want the foreign mapping", ce.Holder)
	}
	if got, _ := find(t, b, want.Key); got.Description != "someone else" {
		t.Errorf("foreign mapping changed to %+v", got)
	}
}
