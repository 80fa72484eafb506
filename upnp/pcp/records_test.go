package pcp

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

var lanGateway = netip.MustParseAddr("192.168.1.1")

func TestRecordsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	r, err := OpenRecords(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := entry{Mapping: forward.Mapping{Key: key(forward.TCP, 25565), InternalHost: lanHost, InternalPort: 25565,
		Description: "portfwd:mc", Lease: time.Hour, Enabled: true},
		GrantedPort: 25565, Expires: time.Unix(1e9, 0).UTC(), Nonce: "00112233445566778899aabb"}
	g := r.gateway("pcp", lanGateway)
	g.put(e)
	g.Epoch, g.EpochAt, g.External = 100, time.Unix(1e9, 0).UTC(), "50.60.70.1"
	if err := r.Save(); err != nil {
		t.Fatal(err)
	}
	if r, err = OpenRecords(dir); err != nil {
		t.Fatal(err)
	}
	back := r.gateway("pcp", lanGateway)
	got, ok := back.find(e.Key)
	if !ok || got != e || back.Epoch != 100 || back.External != "50.60.70.1" || len(r.Warnings()) != 0 {
		t.Errorf("after reopening: %+v, %v, %+v; want %+v", got, ok, back, e)
	}
	if other := r.gateway("natpmp", lanGateway); len(other.Entries) != 0 || other.External != "" {
		t.Errorf("another protocol's record shares entries: %+v", other)
	}
}

// todaysFile is a state file as portfwd wrote it before the records moved
// out of package forward: the same name, the same layout.
const todaysFile = `{
  "format_version": 1,
  "gateways": [
    {
      "protocol": "natpmp",
      "gateway": "192.168.1.1",
      "epoch": 4200,
      "epoch_at": "2025-06-01T12:10:00Z",
      "entries": [
        {
          "Protocol": "tcp",
          "ExternalPort": 25565,
          "InternalHost": "192.168.77.10",
          "InternalPort": 25565,
          "Description": "portfwd:minecraft",
          "Lease": 3600000000000,
          "Enabled": true,
          "granted_port": 25565,
          "expires": "2025-06-01T13:00:00Z"
        }
      ]
    },
    {
      "protocol": "pcp",
      "gateway": "192.168.1.1",
      "epoch": 5,
      "epoch_at": "2025-06-01T12:00:00Z",
      "entries": null,
      "external": "50.60.70.1"
    }
  ]
}
`

func TestRecordsReadTodaysFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(todaysFile), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRecords(dir)
	if err != nil || len(r.Warnings()) != 0 {
		t.Fatalf("OpenRecords = %v, warnings", err)
	}
	g := r.gateway("natpmp", lanGateway)
	want := forward.Mapping{Key: key(forward.TCP, 25565), InternalHost: lanHost, InternalPort: 25565,
		Description: "portfwd:minecraft", Lease: time.Hour, Enabled: true}
	if e, ok := g.find(want.Key); !ok || e.Mapping != want || e.GrantedPort != 25565 || g.Epoch != 4200 ||
		!e.Expires.Equal(time.Date(2025, 6, 1, 13, 0, 0, 0, time.UTC)) {
		t.Errorf("entry %+v, %v in %+v", e, ok, g)
	}
	now := time.Date(2025, 6, 1, 12, 30, 0, 0, time.UTC)
	if live := g.live(now); len(live) != 1 || live[0].Lease != 30*time.Minute {
		t.Errorf("live = %+v; want the mapping with 30m left", live)
	}
	if p := r.gateway("pcp", lanGateway); p.External != "50.60.70.1" || p.Epoch != 5 {
		t.Errorf("pcp record %+v", p)
	}
	// And it is written back in the same layout.
	if err := r.Save(); err != nil {
		t.Fatal(err)
	}
	var again, before any
	raw, _ := os.ReadFile(filepath.Join(dir, "state.json"))
	if json.Unmarshal(raw, &again) != nil || json.Unmarshal([]byte(todaysFile), &before) != nil || !jsonEqual(again, before) {
		t.Errorf("written back as\n%s\nwant\n%s", raw, todaysFile)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestRecordsUnreadableIsSetAside(t *testing.T) {
	for name, content := range map[string]string{
		"corrupt":       `{"format_version":1,"gateways":[{`,
		"other version": `{"format_version":2,"gateways":[]}`,
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "state.json")
		os.WriteFile(path, []byte(content), 0o644)
		r, err := OpenRecords(dir)
		if err != nil {
			t.Fatal(err)
		}
		w := r.Warnings()
		want := "state file " + path + " is unreadable ("
		if len(w) != 1 || !strings.HasPrefix(w[0], want) || !strings.HasSuffix(w[0], "); set aside as "+path+".corrupt, rebuilding from the gateway") {
			t.Errorf("%s: warnings = %q; want one saying %q…", name, w, want)
		}
		if len(r.Warnings()) != 0 {
			t.Errorf("%s: warnings not forgotten", name)
		}
		if aside, err := os.ReadFile(path + ".corrupt"); err != nil || string(aside) != content {
			t.Errorf("%s: not set aside: %v", name, err)
		}
		if err := r.Save(); err != nil {
			t.Errorf("%s: saving over an unreadable file: %v", name, err)
		}
	}
}

func TestRecordsSaveLeavesNoTempFiles(t *testing.T) {
	dir := t.TempDir()
	r, _ := OpenRecords(dir)
	for range 3 {
		if err := r.Save(); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "state.json" {
		t.Errorf("directory holds %v; want state.json alone", entries)
	}
}

func TestMemoryRecordsWriteNothing(t *testing.T) {
	r := MemoryRecords()
	r.gateway("natpmp", lanGateway).Epoch = 7
	if err := r.Save(); err != nil {
		t.Errorf("Save of memory records: %v", err)
	}
	if got := r.gateway("natpmp", lanGateway).Epoch; got != 7 {
		t.Errorf("memory records lost their epoch: %d", got)
	}
}

func TestRecordsLive(t *testing.T) {
	now := time.Unix(1e9, 0)
	g := &gatewayRecord{}
	for port, left := range map[uint16]time.Duration{1: time.Hour + 1500*time.Millisecond, 2: 500 * time.Millisecond, 3: -time.Minute} {
		m := mapping(forward.UDP, port, time.Hour)
		m.AnyExternal = true
		g.put(entry{Mapping: m, GrantedPort: port, Expires: now.Add(left)})
	}
	live := g.live(now)
	if len(live) != 1 || live[0].Lease != time.Hour+time.Second || live[0].AnyExternal || !live[0].Enabled {
		t.Errorf("live = %+v; want the one with time left, in whole seconds, as observed", live)
	}
}
