//go:build unix

package pcp

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

// entryJSON is an entry of the state file for the fake gateway's clock,
// lapsing at 13:00; change replaces its fields as text.
func entryJSON(proto string, port int, change ...string) string {
	e := fmt.Sprintf(`{"Protocol": %q, "ExternalPort": %d, "InternalHost": "127.0.0.1", "InternalPort": %d,
		"Description": "portfwd:r", "Lease": 3600000000000, "Enabled": true, "granted_port": %d, "expires": "2025-06-01T13:00:00Z"}`,
		proto, port, port, port)
	for i := 0; i+1 < len(change); i += 2 {
		e = strings.Replace(e, change[i], change[i+1], 1)
	}
	return e
}

// TestRecordsDropInvalid: a record that parses but that portfwd could not
// act on (a protocol it cannot map, a port 0, an address that does not
// parse, a second record of one key or gateway) once made every apply
// exit 3 forever, failing to delete it. It is dropped with a warning that
// says which and why; the valid records stay, the backend lists only
// them, and the file is written without the rest, so the next run has
// nothing to warn of.
func TestRecordsDropInvalid(t *testing.T) {
	bad := []string{
		entryJSON("sctp", 9000),
		entryJSON("tcp", 9001, `"InternalPort": 9001`, `"InternalPort": 0`),
		entryJSON("tcp", 9002, `"granted_port": 9002`, `"granted_port": 0`),
		entryJSON("tcp", 0),
		entryJSON("tcp", 9003, `"127.0.0.1"`, `"not-an-address"`),
		entryJSON("tcp", 9004, `"InternalHost": "127.0.0.1",`, ``),
		entryJSON("udp", 19132, `"portfwd:r"`, `"portfwd:twice"`),
	}
	file := `{"format_version": 1, "gateways": [
		{"protocol": "natpmp", "gateway": "127.0.0.1", "epoch": 3000, "epoch_at": "2025-06-01T11:50:00Z",
		 "entries": [` + entryJSON("udp", 19132) + `, ` + strings.Join(bad, ", ") + `]},
		{"protocol": "upnp", "gateway": "127.0.0.1", "entries": []},
		{"protocol": "pcp", "gateway": "the router", "entries": []},
		{"protocol": "natpmp", "gateway": "127.0.0.1", "entries": []},
		{"protocol": "pcp", "gateway": "127.0.0.1", "epoch": "soon"},
		{"protocol": "pcp", "gateway": "192.168.1.1", "external": "unknown", "entries": []},
		null
	]}`
	e := &env{fake: newFakeGateway(t), dir: t.TempDir(), open: OpenNATPMP}
	if err := os.WriteFile(filepath.Join(e.dir, "state.json"), []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	rec, err := OpenRecords(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	w := rec.Warnings()
	for _, says := range []string{`entries[1], which portfwd cannot act on (protocol "sctp", want tcp or udp)`,
		"entries[2]", "entries[3]", "entries[4]", "entries[5]", "entries[6]", "entries[7]", "a second record of udp/19132",
		`gateways[1], which portfwd cannot act on (protocol "upnp"`, `gateway "the router" is not an address`,
		"gateways[3], which portfwd cannot act on (a second record of natpmp gateway 127.0.0.1)", "gateways[4]",
		`gateways[5].external, which portfwd cannot act on ("unknown" is not an address)`} {
		if !strings.Contains(strings.Join(w, "\n"), says) {
			t.Errorf("no warning says %q:\n%s", says, strings.Join(w, "\n"))
		}
	}
	if len(w) != len(bad)+5 || !strings.HasPrefix(w[0], "state file "+filepath.Join(e.dir, "state.json")+": dropped gateways[0].entries[1]") {
		t.Errorf("%d warnings, want %d, each naming the file:\n%s", len(w), len(bad)+5, strings.Join(w, "\n"))
	}
	got, err := e.reopen(t).List(testCtx(t))
	if err != nil || len(got) != 1 || got[0].Key != key(forward.UDP, 19132) || got[0].Description != "portfwd:r" {
		t.Errorf("List = %v, %v; want the valid record alone", got, err)
	}
	again, err := OpenRecords(e.dir)
	if err != nil || len(again.Warnings()) != 0 || len(again.file.Gateways) != 2 {
		t.Errorf("the next run: %v, %d gateways, warnings %q; want the file written without what was dropped",
			err, len(again.file.Gateways), again.Warnings())
	}
}

// TestRecordsSCTPNeverPoisons: the case, `"protocol": "sctp"` in
// a record of portfwd's: every apply tried to delete it, failed (neither
// protocol maps sctp) and exited 3, forever. Now two applies in a row
// succeed: the record is dropped with a warning (TestRecordsDropInvalid).
func TestRecordsSCTPNeverPoisons(t *testing.T) {
	for _, p := range protocols {
		e := &env{fake: newFakeGateway(t), dir: t.TempDir(), open: p.open}
		file := `{"format_version": 1, "gateways": [{"protocol": "` + p.name + `", "gateway": "127.0.0.1",
			"entries": [` + entryJSON("sctp", 9000) + `]}]}`
		if err := os.WriteFile(filepath.Join(e.dir, "state.json"), []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		want := []forward.Mapping{mapping(forward.TCP, 25565, time.Hour)}
		for run := 1; run <= 2; run++ {
			b := e.reopen(t)
			observed, err := b.List(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			plan := forward.Diff(want, observed, forward.DiffOptions{Config: "t", Rules: []string{"mc"}, Prune: true, Hosts: []netip.Addr{loopback}})
			if res := forward.Apply(testCtx(t), b, plan, nil); res.Failed() != 0 {
				t.Errorf("%s: apply %d: %d changes failed: %+v", p.name, run, res.Failed(), res.Outcomes)
			}
		}
	}
}

// fileID is what tells one version of the state file from another: its
// inode (every save renames a new file in) and its modification time.
func fileID(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		return err.Error()
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st == nil {
		return fi.ModTime().String()
	}
	return fmt.Sprintf("inode %d, %v", st.Ino, fi.ModTime())
}

// TestNothingChangedWritesNothing: what plan, status and check do — open,
// List, ExternalAddr — writes nothing when nothing changed, not even the
// epoch the gateway reported; no file is created on a first run either.
// What matters is written: a restart, a lapsed mapping, a baseline older
// than a day.
func TestNothingChangedWritesNothing(t *testing.T) {
	for _, p := range protocols {
		e := &env{fake: newFakeGateway(t), dir: t.TempDir(), open: p.open}
		path := filepath.Join(e.dir, "state.json")
		if _, err := e.reopen(t).List(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s: a first plan with nothing recorded wrote the state file (%v)", p.name, err)
		}
		forwardtest.MustAdd(t, e.reopen(t), mapping(forward.TCP, 25565, time.Hour))
		before := fileID(t, path)
		for range 3 {
			e.fake.clock.Advance(5 * time.Minute)
			b := e.reopen(t)
			if _, err := b.List(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			if _, err := b.ExternalAddr(testCtx(t)); err != nil {
				t.Fatal(err)
			}
		}
		if after := fileID(t, path); after != before {
			t.Errorf("%s: runs that changed nothing rewrote the state file (%s, then %s)", p.name, before, after)
		}
		forwardtest.MustAdd(t, e.reopen(t), mapping(forward.TCP, 25566, 2*baselineAge))
		e.fake.clock.Advance(time.Hour) // 25565 lapses
		if _, err := e.reopen(t).List(testCtx(t)); err != nil || fileID(t, path) == before {
			t.Errorf("%s: a lapsed mapping was not written away (%v)", p.name, err)
		}
		before = fileID(t, path)
		e.fake.clock.Advance(baselineAge + time.Minute)
		if _, err := e.reopen(t).List(testCtx(t)); err != nil || fileID(t, path) == before {
			t.Errorf("%s: a baseline older than a day was not written anew (%v)", p.name, err)
		}
	}
}

// TestStaleTempFilesRemoved: a save killed between creating its temp file
// and renaming it (kill -9) leaves .state-<digits>.json behind; the next
// run removes those older than a minute. Anything else is left alone: a
// fresh one (a save may be under way), other names, what is not a
// regular file, and what a link points to.
func TestStaleTempFilesRemoved(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "target.json")
	old := time.Now().Add(-2 * time.Minute)
	files := map[string]bool{ // name: removed
		".state-1234567890.json": true, ".state-1.json": true,
		".state-99.json.partial": false, ".state-abc.json": false, ".state-.json": false,
		"state.json.corrupt": false, "notes-123.json": false,
	}
	for name := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{".state-55.json", ".state-66.json", outside} {
		files[filepath.Base(name)] = false
	}
	os.WriteFile(outside, []byte("{"), 0o600)
	os.Symlink(outside, filepath.Join(dir, ".state-55.json"))
	os.Mkdir(filepath.Join(dir, ".state-66.json"), 0o700)
	for name := range files {
		os.Chtimes(filepath.Join(dir, name), old, old)
	}
	os.Chtimes(outside, old, old)
	fresh := filepath.Join(dir, ".state-777.json")
	os.WriteFile(fresh, []byte("{"), 0o600)
	files[".state-777.json"] = false
	if _, err := OpenRecords(dir); err != nil {
		t.Fatal(err)
	}
	for name, removed := range files {
		path := filepath.Join(dir, name)
		if name == "target.json" {
			path = outside
		}
		if _, err := os.Lstat(path); os.IsNotExist(err) != removed {
			t.Errorf("%s: removed %v, want %v", name, os.IsNotExist(err), removed)
		}
	}
}

// FuzzReadRecords: whatever a state file holds, opening it never fails
// (what does not parse is set aside) and keeps only records portfwd can
// act on.
func FuzzReadRecords(f *testing.F) {
	f.Add([]byte(todaysFile))
	f.Add([]byte(`{"format_version": 1, "gateways": [{"protocol": "natpmp", "gateway": "127.0.0.1", "entries": [` + entryJSON("sctp", 9000) + `]}, null]}`))
	f.Add([]byte(`{"format_version": 1, "gateways": [{"protocol": "pcp", "gateway": "::1", "external": "x", "entries": [1, {}]}]}`))
	dir := f.TempDir() // one for all inputs: a t.TempDir each stalls the fuzzer
	f.Fuzz(func(t *testing.T, b []byte) {
		os.Remove(filepath.Join(dir, "state.json.corrupt"))
		if err := os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := OpenRecords(dir)
		if err != nil {
			t.Fatalf("OpenRecords: %v", err)
		}
		kept := make(map[[2]string]bool)
		for _, g := range r.file.Gateways {
			if err := checkGateway(g, kept); err != nil {
				t.Fatalf("kept an invalid gateway record: %v", err)
			}
			kept[[2]string{g.Protocol, g.Gateway}] = true
			keys := make(map[forward.Key]bool)
			for _, e := range g.Entries {
				if err := checkEntry(e, keys); err != nil {
					t.Fatalf("kept an invalid entry: %v", err)
				}
				keys[e.Key] = true
			}
		}
	})
}
