package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// fakeProc writes /proc/PID/stat files under a temp dir: a process whose
// command name holds spaces and parentheses, as a real one may.
func fakeProc(t *testing.T, procs map[int]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, stateStart := range procs {
		var state string
		var start int
		fmt.Sscanf(stateStart, "%s %d", &state, &start)
		line := fmt.Sprintf("%d (go test (x) 1) %s 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 %d 20 21\n", pid, state, start)
		if err := os.MkdirAll(filepath.Join(root, fmt.Sprint(pid)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, fmt.Sprint(pid), "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestSweepPlan(t *testing.T) {
	proc := fakeProc(t, map[int]string{
		100: "S 5000", // a running test
		200: "S 9999", // pid 200 reused by another process since lab b's owner started
		300: "Z 7000", // a zombie
	})
	tmp := t.TempDir()
	lab := func(name, owner string) string {
		d := filepath.Join(tmp, name+"-123456")
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			if err := os.WriteFile(filepath.Join(d, ownerFile), []byte(owner), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	dirs := []string{
		lab("pfl-aaaaaa", "100 5000\n"), // owner runs: kept
		lab("pfl-bbbbbb", "200 5000\n"), // pid reused: swept
		lab("pfl-cccccc", "300 7000\n"), // owner a zombie: swept
		lab("pfl-dddddd", "400 1\n"),    // owner gone: swept
		lab("pfl-eeeeee", ""),           // no owner recorded (an older lab): swept
		lab("pfl-ffffff", "garbage"),    // unreadable: swept
		filepath.Join(tmp, "pfl-notalab-1"),
	}
	namespaces := []string{"pfl-aaaaaa-wan", "pfl-aaaaaa-lan", "pfl-bbbbbb-router", "pfl-999999-lan", "pfl-aaaaaa-other", "someone-else", "pfl-xyz"}
	want := map[string]struct {
		kept  bool
		hosts int
		dirs  int
	}{
		"pfl-aaaaaa": {true, 2, 1}, "pfl-bbbbbb": {false, 1, 1}, "pfl-cccccc": {false, 0, 1},
		"pfl-dddddd": {false, 0, 1}, "pfl-eeeeee": {false, 0, 1}, "pfl-ffffff": {false, 0, 1},
		"pfl-999999": {false, 1, 0}, // namespaces whose dir is gone: no owner to ask
	}
	got := sweepPlan(namespaces, dirs, proc)
	if len(got) != len(want) {
		t.Errorf("sweepPlan found %d labs, want %d: %+v", len(got), len(want), got)
	}
	for _, c := range got {
		w, ok := want[c.name]
		if !ok {
			t.Errorf("sweepPlan found lab %q, which is not one", c.name)
			continue
		}
		if (c.owner != nil) != w.kept || len(c.hosts) != w.hosts || len(c.dirs) != w.dirs {
			t.Errorf("lab %s: kept %v (%s), %d namespaces, %d dirs; want kept %v, %d, %d", c.name, c.owner != nil, c.why, len(c.hosts), len(c.dirs), w.kept, w.hosts, w.dirs)
		}
	}
}

// TestOwnerIsThisProcess records this process as an owner and finds it
// running in the real /proc; a pid that is not running is not.
func TestOwnerIsThisProcess(t *testing.T) {
	dir := t.TempDir()
	if err := writeOwner(dir, os.Getpid()); err != nil {
		t.Fatal(err)
	}
	o, err := readOwner(dir)
	if err != nil || o.PID != os.Getpid() {
		t.Fatalf("readOwner = %+v, %v", o, err)
	}
	if !o.running(procRoot) {
		t.Errorf("this process, %+v, does not count as running", o)
	}
	if o.Start++; o.running(procRoot) {
		t.Errorf("a process with this pid but another start time counts as running")
	}
}
