package upnp

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// TestAddAfterList: right after List, Add asks nothing before
// AddPortMapping, refuses a foreign holder without any request, and reads
// the lease back only when the router may have changed it.
func TestAddAfterList(t *testing.T) {
	tests := []struct {
		name  string
		list  bool
		m     forward.Mapping
		want  []string
		isErr error
	}{
		{"new key, finite lease", true, mapping(40001, "127.0.0.1", time.Hour), []string{"AddPortMapping"}, nil},
		{"own key, finite lease", true, mapping(40000, "127.0.0.1", time.Hour), []string{"AddPortMapping"}, nil},
		{"foreign holder", true, mapping(40002, "127.0.0.1", time.Hour), nil, forward.ErrConflict},
		{"lease 0 is read back", true, mapping(40001, "127.0.0.1", 0), []string{"AddPortMapping", "GetSpecificPortMappingEntry"}, nil},
		{"over a week is read back", true, mapping(40001, "127.0.0.1", 8*24*time.Hour), []string{"AddPortMapping", "GetSpecificPortMappingEntry"}, nil},
		{"no List: asks first", false, mapping(40001, "127.0.0.1", time.Hour), []string{"GetSpecificPortMappingEntry", "AddPortMapping"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeIGD(t, "igd2-rootdesc.xml")
			f.entries = []fakeEntry{
				{proto: "TCP", ext: 40000, port: 40000, client: "127.0.0.1", desc: "portfwd:mc", enabled: true, lease: 60},
				{proto: "TCP", ext: 40002, port: 40002, client: "127.0.0.1", desc: "game", enabled: true},
			}
			g := newTestIGD(t, f)
			if tt.list {
				if _, err := g.List(testCtx(t)); err != nil {
					t.Fatal(err)
				}
			}
			f.mu.Lock()
			f.actions = nil
			f.mu.Unlock()
			_, err := g.Add(testCtx(t), tt.m)
			if !errors.Is(err, tt.isErr) || (tt.isErr == nil && err != nil) {
				t.Fatalf("Add = %v, want %v", err, tt.isErr)
			}
			if !slices.Equal(f.actions, tt.want) {
				t.Errorf("actions %v, want %v", f.actions, tt.want)
			}
		})
	}
}

// TestSnapshotFollowsAddDelete: what Add and Delete did is in the
// snapshot, and an old snapshot is not trusted.
func TestSnapshotFollowsAddDelete(t *testing.T) {
	f := newFakeIGD(t, "igd2-rootdesc.xml")
	g := newTestIGD(t, f)
	if _, err := g.List(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	m := mapping(40005, "127.0.0.1", time.Hour)
	if _, err := g.Add(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	if got, present, known := g.snap.lookup(m.Key); !known || !present || got.Description != m.Description {
		t.Errorf("after Add: %+v %v %v", got, present, known)
	}
	if err := g.Delete(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	if _, present, known := g.snap.lookup(m.Key); !known || present {
		t.Errorf("after Delete: present %v known %v", present, known)
	}
	g.snap.mu.Lock()
	g.snap.at = time.Now().Add(-snapshotTTL - time.Second)
	g.snap.mu.Unlock()
	if _, _, known := g.snap.lookup(m.Key); known {
		t.Errorf("an old snapshot is trusted")
	}
}
