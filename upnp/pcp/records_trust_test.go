//go:build unix

package pcp

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// openRecordsWithin is OpenRecords(dir), failing the test if it has not
// returned after 5 s (a named pipe once hung it); write unblocks it then.
func openRecordsWithin(t *testing.T, dir string, unblock func()) (*Records, error) {
	t.Helper()
	type result struct {
		r   *Records
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := OpenRecords(dir)
		done <- result{r, err}
	}()
	select {
	case res := <-done:
		return res.r, res.err
	case <-time.After(5 * time.Second):
		unblock()
		t.Fatal("OpenRecords is still waiting after 5s")
		return nil, nil
	}
}

// TestRecordsRefuseWhatIsNotAFile: state.json as a symbolic link (to
// /dev/zero it ran out of memory; here to another records file), a named
// pipe (it hung apply with the run lock held) or a directory is refused
// with what it is and what to do, and never followed or read.
func TestRecordsRefuseWhatIsNotAFile(t *testing.T) {
	elsewhere := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(elsewhere, []byte(todaysFile), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		create func(path string) error
		says   string
	}{
		"link":      {func(p string) error { return os.Symlink(elsewhere, p) }, "state.json is a symbolic link"},
		"pipe":      {func(p string) error { return syscall.Mkfifo(p, 0o644) }, "state.json is a named pipe (FIFO), not a regular file"},
		"directory": {func(p string) error { return os.Mkdir(p, 0o755) }, "state.json is a directory, not a regular file"},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "state.json")
		if err := tc.create(path); err != nil {
			t.Fatal(err)
		}
		_, err := openRecordsWithin(t, dir, func() {
			if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
				w.Close()
			}
		})
		if err == nil || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "remove") {
			t.Errorf("%s: OpenRecords = %v; want a refusal saying %q and what to do", name, err, tc.says)
		}
		if _, err := os.Lstat(path + ".corrupt"); err == nil {
			t.Errorf("%s: set aside as if it were a corrupt file", name)
		}
	}
}

// TestRecordsRefuseOversized: a file larger than portfwd ever writes is
// not read into memory but refused, with what to do.
func TestRecordsRefuseOversized(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(maxRecordsSize + 1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	_, err = OpenRecords(dir)
	if err == nil || !strings.Contains(err.Error(), "larger than the 64 MiB portfwd ever writes") || !strings.Contains(err.Error(), "move it out of the state directory") {
		t.Errorf("OpenRecords = %v; want the oversized file refused", err)
	}
}

// TestRecordsRefuseADirectoryOthersWrite: records in a directory other
// users can write are not read (forward.PrepareStateDir).
func TestRecordsRefuseADirectoryOthersWrite(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(todaysFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRecords(dir); err == nil || !strings.Contains(err.Error(), "writable by other users") || !strings.Contains(err.Error(), "chmod go-w") {
		t.Errorf("OpenRecords = %v; want the directory refused", err)
	}
}
