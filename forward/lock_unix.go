//go:build unix

package forward

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// openSafely are the flags OpenStateFile adds to every open: O_NOFOLLOW
// fails on a symbolic link instead of following it, and O_NONBLOCK opens a
// named pipe at once instead of waiting for a writer (a regular file reads
// the same either way).
const openSafely = syscall.O_NOFOLLOW | syscall.O_NONBLOCK

// trustStateDir refuses a state directory another user can write: one
// owned by someone other than this user or root, or writable by its group
// or by everyone. Whoever can write there can rewrite the records, and so
// choose which mappings portfwd deletes or keeps; plant a link or a pipe
// where portfwd opens a file; or replace the lock file and run beside it.
//
// It refuses rather than warns, as OpenSSH's StrictModes refuses keys in
// such a directory: a warning scrolls past in a daemon's log while the
// harm is done, and the fix, one chmod, takes a second. That holds for
// /var/lib/portfwd, where a writable directory would let any local user
// steer a root process, and for a user's ~/.local/state/portfwd alike,
// which portfwd creates 0755: only a directory made or changed by hand is
// refused. The sticky bit does not make a shared directory safe: another
// user could still create state.json or state.lock there first.
func trustStateDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("checking state directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	me := os.Geteuid()
	switch {
	case !fi.IsDir():
		return fmt.Errorf("state directory %s is not a directory; choose another with --state-dir or PORTFWD_STATE_DIR", dir)
	case st.Uid != 0 && int(st.Uid) != me:
		return fmt.Errorf("state directory %s belongs to user %d, not to this user (%d) or root, and whoever owns it could steer which mappings portfwd deletes; "+
			"run portfwd as that user, chown the directory to %d, or choose another with --state-dir or PORTFWD_STATE_DIR", dir, st.Uid, me, me)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("state directory %s is writable by other users (mode %v), who could steer which mappings portfwd deletes; "+
			"run chmod go-w %s, or choose another with --state-dir or PORTFWD_STATE_DIR", dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// flockWait takes an exclusive flock on path, polling until wait runs out,
// so a second portfwd waits for the first instead of interleaving with it.
// The lock dies with the process, so a killed run never leaves it held.
func flockWait(path string, wait time.Duration) (func() error, error) {
	f, err := OpenStateFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("opening the run lock: %w; choose a state directory this user can write with --state-dir or PORTFWD_STATE_DIR", err)
		}
		return nil, fmt.Errorf("opening the run lock: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f.Close, nil // closing the file releases the lock
		}
		if err != syscall.EWOULDBLOCK || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("another portfwd is changing the gateway (lock %s held); try again when it has finished", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
