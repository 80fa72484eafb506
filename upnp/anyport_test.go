package upnp

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

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
