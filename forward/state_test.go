package forward_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

var gw = netip.MustParseAddr("192.168.1.1")

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := forward.OpenState(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	g := s.Gateway("pcp", gw)
	rec := forward.Recorded{Mapping: forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: 25565},
		InternalHost: self, InternalPort: 25565, Description: "portfwd:mc", Lease: time.Hour, Enabled: true},
		GrantedPort: 25565, Expires: time.Unix(1e9, 0).UTC(), Nonce: "00112233445566778899aabb"}
	g.Put(rec)
	g.Observe(100, time.Unix(1e9, 0))
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = forward.OpenState(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, ok := s.Gateway("pcp", gw).Find(rec.Key)
	if !ok || got != rec || len(s.Warnings) != 0 {
		t.Errorf("after reopening: %+v, %v, warnings %v; want %+v", got, ok, s.Warnings, rec)
	}
	if other := s.Gateway("natpmp", gw); len(other.Entries) != 0 {
		t.Errorf("another protocol's record shares entries: %+v", other)
	}
}

func TestStateCorruptIsSetAside(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "state.json"), []byte(`{"format_version":1,"gateways":[{`), 0o644)
	s, err := forward.OpenState(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "unreadable") {
		t.Errorf("warnings = %v; want one about the unreadable file", s.Warnings)
	}
	if _, err := os.Stat(filepath.Join(dir, "state.json.corrupt")); err != nil {
		t.Errorf("corrupt file not set aside: %v", err)
	}
	if err := s.Save(); err != nil {
		t.Errorf("saving over a corrupt state: %v", err)
	}
}

func TestStateLockExcludesSecondRun(t *testing.T) {
	dir := t.TempDir()
	first, err := forward.OpenState(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := forward.OpenState(dir, 50*time.Millisecond); err == nil || !strings.Contains(err.Error(), "another portfwd") {
		t.Errorf("second open while locked: %v; want it refused", err)
	}
	first.Close()
	second, err := forward.OpenState(dir, 0)
	if err != nil {
		t.Fatalf("open after the first closed: %v", err)
	}
	second.Close()
}

func TestStateSaveLeavesNoTempFiles(t *testing.T) {
	dir := t.TempDir()
	s, _ := forward.OpenState(dir, 0)
	defer s.Close()
	for i := 0; i < 3; i++ {
		if err := s.Save(); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".state-") {
			t.Errorf("temp file left behind: %s", e.Name())
		}
	}
}

func TestObserveEpoch(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	tests := []struct {
		name  string
		epoch uint32
		after time.Duration
		lost  bool
	}{
		{"advanced with the clock", 160, time.Minute, false},
		{"advanced a little slower (1/8 allowed)", 153, time.Minute, false},
		{"went backwards (gateway rebooted)", 5, time.Minute, true},
		{"advanced far less than the time passed", 110, 10 * time.Minute, true},
	}
	for _, tt := range tests {
		var g forward.GatewayState
		if g.Observe(100, t0) {
			t.Fatalf("%s: the first observation lost state", tt.name)
		}
		if got := g.Observe(tt.epoch, t0.Add(tt.after)); got != tt.lost {
			t.Errorf("%s: lost = %v, want %v", tt.name, got, tt.lost)
		}
	}
}

// TestStateExternal: the external address is kept across runs, and a file
// written before the field existed still reads.
func TestStateExternal(t *testing.T) {
	dir := t.TempDir()
	old := `{"format_version":1,"gateways":[{"protocol":"pcp","gateway":"192.168.1.1","epoch":5,"epoch_at":"2025-06-01T12:00:00Z","entries":[]}]}`
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := forward.OpenState(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	g := s.Gateway("pcp", gw)
	if len(s.Warnings) != 0 || g.Epoch != 5 || g.External != "" {
		t.Fatalf("older file read as %+v, warnings %v", g, s.Warnings)
	}
	g.External = "50.60.70.1"
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = forward.OpenState(dir, 0); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Gateway("pcp", gw).External; got != "50.60.70.1" {
		t.Errorf("External after reopening = %q", got)
	}
	if s.Gateway("natpmp", gw).External != "" {
		t.Error("another protocol's record shares the external address")
	}
}

func TestMemoryStateWritesNothing(t *testing.T) {
	s := forward.MemoryState()
	s.Gateway("natpmp", gw).Observe(7, time.Unix(1e9, 0))
	if err := s.Save(); err != nil || s.Close() != nil {
		t.Errorf("Save/Close of a memory state: %v", err)
	}
	if got := s.Gateway("natpmp", gw).Epoch; got != 7 {
		t.Errorf("memory state lost its epoch: %d", got)
	}
}
