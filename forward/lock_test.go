//go:build unix

package forward_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// TestLockRunRefusesALink: a symbolic link planted as state.lock is
// refused, and what it points to is never created (ln -s /etc/nologin
// state.lock made that file as root).
func TestLockRunRefusesALink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "nologin")
	if err := os.Symlink(target, filepath.Join(dir, "state.lock")); err != nil {
		t.Fatal(err)
	}
	l, err := forward.LockRun(dir, 50*time.Millisecond)
	if err == nil {
		l.Unlock()
	}
	if err == nil || !strings.Contains(err.Error(), "state.lock is a symbolic link") || !strings.Contains(err.Error(), "remove the link") {
		t.Errorf("LockRun = %v; want a refusal that names the link and says to remove it", err)
	}
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Errorf("the link's target was created (%v)", err)
	}
}

// TestLockRunRefusesNonRegular: a named pipe or a directory as state.lock
// is refused with what it is.
func TestLockRunRefusesNonRegular(t *testing.T) {
	for kind, create := range map[string]func(string) error{
		"named pipe": func(p string) error { return syscall.Mkfifo(p, 0o644) },
		"directory":  func(p string) error { return os.Mkdir(p, 0o755) },
	} {
		dir := t.TempDir()
		if err := create(filepath.Join(dir, "state.lock")); err != nil {
			t.Fatal(err)
		}
		l, err := forward.LockRun(dir, 50*time.Millisecond)
		if err == nil {
			l.Unlock()
		}
		if err == nil || !strings.Contains(err.Error(), "state.lock is a "+kind) || !strings.Contains(err.Error(), "remove it") {
			t.Errorf("%s: LockRun = %v; want a refusal that names it and says to remove it", kind, err)
		}
	}
}

// TestOpenStateFileNeverWaits: opening a named pipe to read it, which
// waits for a writer forever, is refused at once.
func TestOpenStateFileNeverWaits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		f, err := forward.OpenStateFile(path, os.O_RDONLY, 0)
		if err == nil {
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "named pipe") {
			t.Errorf("OpenStateFile = %v; want a named pipe refused", err)
		}
	case <-time.After(5 * time.Second):
		if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil { // let the open return
			w.Close()
		}
		t.Fatal("opening a named pipe is still waiting after 5s")
	}
}

// TestStateDirWritableByOthers: a state directory other users can write
// is refused, with the chmod that fixes it; this user's own is not.
func TestStateDirWritableByOthers(t *testing.T) {
	for mode, refused := range map[os.FileMode]bool{0o700: false, 0o755: false, 0o775: true, 0o757: true, 0o777 | os.ModeSticky: true} {
		dir := t.TempDir()
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		l, err := forward.LockRun(dir, 50*time.Millisecond)
		if err == nil {
			l.Unlock()
		}
		says := err != nil && strings.Contains(err.Error(), "is writable by other users") && strings.Contains(err.Error(), "chmod go-w "+dir)
		if refused != says {
			t.Errorf("mode %v: LockRun = %v; refused %v", mode, err, refused)
		}
		if err := forward.PrepareStateDir(dir); (err != nil) != refused {
			t.Errorf("mode %v: PrepareStateDir = %v; refused %v", mode, err, refused)
		}
	}
}

// TestStateDirOfAnotherUser: a state directory another user owns is
// refused; root's is trusted by everyone. It needs root to chown.
func TestStateDirOfAnotherUser(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chown(dir, 4242, 4242); err != nil {
		t.Skipf("cannot give the directory to another user: %v", err)
	}
	if os.Geteuid() == 4242 {
		t.Skip("running as the other user")
	}
	_, err := forward.LockRun(dir, 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "belongs to user 4242") {
		t.Errorf("LockRun = %v; want the directory of user 4242 refused", err)
	}
}
