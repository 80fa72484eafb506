package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/portfwd/portfwd/internal/lab"
)

// The state directory's lab tests (hardening issue, points 7 and 10): what
// portfwd does with its own state directory when someone else had a hand
// in it, through the binary on the LAN host against miniupnpd.

// stateFileID tells one version of the state file from another: every
// save renames a new file in, so its inode changes, and its mtime.
func stateFileID(t *testing.T, l *lab.Lab) string {
	t.Helper()
	fi, err := os.Stat(filepath.Join(l.Dir, "state", "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("inode %d, %v", fi.Sys().(*syscall.Stat_t).Ino, fi.ModTime())
}

// TestLabNATPMPPlanWritesNothing: plan and status, which change nothing,
// leave state.json as apply wrote it (they used to write and rename it
// every run, for the epoch alone); so does an apply with nothing to do.
func TestLabNATPMPPlanWritesNothing(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	cfg := writeConfig(t, stateRules("natpmp"))
	if r := portfwd(t, l, "apply", "--no-probe", cfg); r.code != exitOK {
		t.Fatalf("apply: exit %d", r.code)
	}
	before := stateFileID(t, l)
	for _, args := range [][]string{{"plan", cfg}, {"status", cfg}, {"apply", "--no-probe", cfg}} {
		if r := portfwd(t, l, args...); r.code != exitOK {
			t.Fatalf("%s: exit %d", args[0], r.code)
		}
		if after := stateFileID(t, l); after != before {
			t.Errorf("%s rewrote the state file (%s, then %s)", args[0], before, after)
		}
	}
}

// TestLabStateDirOthersCanWrite: a state directory other users can write
// is refused before anything is sent, with the chmod that fixes it; after
// the chmod, apply works.
func TestLabStateDirOthersCanWrite(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	dir := filepath.Join(l.Dir, "state")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	cfg := writeConfig(t, stateRules("natpmp"))
	r := portfwd(t, l, "apply", "--no-probe", cfg)
	if r.code != exitError || !strings.Contains(r.stderr, "writable by other users") || !strings.Contains(r.stderr, "chmod go-w "+dir) {
		t.Errorf("apply in a world-writable state directory: exit %d; want 1 and the chmod that fixes it:\n%s", r.code, r.stderr)
	}
	if n := natpmpMaps(l); n != 0 {
		t.Errorf("%d NAT-PMP mapping requests sent; want none", n)
	}
	os.Chmod(dir, 0o755)
	if r := portfwd(t, l, "apply", "--no-probe", cfg); r.code != exitOK {
		t.Errorf("apply after chmod go-w: exit %d", r.code)
	}
}

// TestLabInvalidStateRecordDropped: the record of protocol sctp
// made every apply exit 3 (it could not be deleted); now the first apply
// warns that it dropped it and succeeds, and the next has nothing to say.
func TestLabInvalidStateRecordDropped(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	cfg := writeConfig(t, stateRules("natpmp"))
	if r := portfwd(t, l, "apply", "--no-probe", cfg); r.code != exitOK {
		t.Fatalf("apply: exit %d", r.code)
	}
	path := filepath.Join(l.Dir, "state", "state.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sctp := `"entries": [
        {"Protocol": "sctp", "ExternalPort": 9000, "InternalHost": "` + l.LANHost.String() + `", "InternalPort": 9000,
         "Description": "portfwd:old", "Lease": 0, "Enabled": true, "granted_port": 9000, "expires": "2999-01-01T00:00:00Z"},`
	edited := strings.Replace(string(raw), `"entries": [`, sctp, 1)
	if edited == string(raw) || os.WriteFile(path, []byte(edited), 0o600) != nil {
		t.Fatalf("could not add the record to\n%s", raw)
	}
	r := portfwd(t, l, "apply", "--no-probe", cfg)
	if r.code != exitOK || !strings.Contains(r.stderr, "dropped gateways[0].entries[0]") || !strings.Contains(r.stderr, `protocol "sctp"`) {
		t.Errorf("apply with an sctp record: exit %d; want 0 and a warning that it was dropped:\n%s", r.code, r.stderr)
	}
	if r := portfwd(t, l, "apply", "--no-probe", cfg); r.code != exitOK || strings.Contains(r.stderr, "warning") {
		t.Errorf("the next apply: exit %d; want 0 and no warning:\n%s", r.code, r.stderr)
	}
}
