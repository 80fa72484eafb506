package upnp

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// anyPortBackend is the part of the NAT-PMP and PCP environments these
// tests need.
type anyPortBackend interface {
	Add(ctx context.Context, m forward.Mapping) (forward.Mapping, error)
	List(ctx context.Context) ([]forward.Mapping, error)
}

// checkAnyPortKept: with external_port: any, a moved grant is kept,
// returned and listed under the granted port, and a renewal on that port
// stays there.
func checkAnyPortKept(t *testing.T, b anyPortBackend, has func(forward.Key) bool) {
	t.Helper()
	m := natpmpMapping(forward.TCP, 25565, time.Hour)
	m.AnyExternal = true
	got, err := b.Add(testCtx(t), m)
	if err != nil || got.ExternalPort != 25566 {
		t.Fatalf("Add = %v, %v; want the mapping granted on 25566", got, err)
	}
	moved := forward.Key{Protocol: forward.TCP, ExternalPort: 25566}
	if !has(moved) {
		t.Error("the granted mapping was given back")
	}
	listed, err := b.List(testCtx(t))
	if err != nil || len(listed) != 1 || listed[0].Key != moved || listed[0].AnyExternal {
		t.Fatalf("List = %v, %v; want the mapping on tcp/25566", listed, err)
	}
	renew := m
	renew.ExternalPort = 25566
	if got, err := b.Add(testCtx(t), renew); err != nil || got.ExternalPort != 25566 {
		t.Errorf("renewal = %v, %v; want it on 25566", got, err)
	}
	if listed, _ := b.List(testCtx(t)); len(listed) != 1 || listed[0].Key != moved {
		t.Errorf("after the renewal List = %v", listed)
	}
}

func TestNATPMPAnyPortKeepsTheGrant(t *testing.T) {
	e := newNATPMPEnv(t)
	e.fake.held[forward.Key{Protocol: forward.TCP, ExternalPort: 25565}] = true
	checkAnyPortKept(t, e.n, e.fake.has)
}

func TestPCPAnyPortKeepsTheGrant(t *testing.T) {
	e := newPCPEnv(t)
	e.fake.held[forward.Key{Protocol: forward.TCP, ExternalPort: 25565}] = true
	checkAnyPortKept(t, e.p, e.fake.has)
}

// TestIGDAnyPortWalksUp: a taken port (a foreign mapping, and a mapping of
// another rule of portfwd's) makes Add for external_port: any try the next
// ports, and never replace what it finds there.
func TestIGDAnyPortWalksUp(t *testing.T) {
	f := newFakeIGD(t, "igd2-rootdesc.xml")
	f.entries = []fakeEntry{
		{proto: "TCP", ext: 25565, port: 25570, client: "127.0.0.1", desc: "other", enabled: true},
		{proto: "TCP", ext: 25566, port: 8080, client: "127.0.0.1", desc: "portfwd:web", enabled: true},
	}
	m := mapping(25565, "127.0.0.1", time.Hour)
	m.AnyExternal = true
	got, err := newTestIGD(t, f).Add(testCtx(t), m)
	if err != nil || got.ExternalPort != 25567 {
		t.Fatalf("Add = %v, %v; want the mapping granted on 25567", got, err)
	}
	if len(f.entries) != 3 || f.entries[0].desc != "other" || f.entries[1].desc != "portfwd:web" {
		t.Errorf("entries = %+v; want the two holders untouched and a third", f.entries)
	}
}

// TestIGDAnyPortGivesUp: after anyPortTries taken ports the add fails as a
// conflict that says so.
func TestIGDAnyPortGivesUp(t *testing.T) {
	f := newFakeIGD(t, "igd2-rootdesc.xml")
	for p := uint16(25565); p <= 25565+anyPortTries; p++ {
		f.entries = append(f.entries, fakeEntry{proto: "TCP", ext: int(p), port: int(p), client: "127.0.0.1", desc: "other", enabled: true})
	}
	m := mapping(25565, "127.0.0.1", time.Hour)
	m.AnyExternal = true
	_, err := newTestIGD(t, f).Add(testCtx(t), m)
	if !errors.Is(err, forward.ErrConflict) || !strings.Contains(err.Error(), "tried the next 16 ports too") {
		t.Errorf("Add = %v; want a conflict saying the next ports were tried", err)
	}
}
