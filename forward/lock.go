package forward

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// RunLock serialises portfwd runs that change one machine's gateways:
// apply, down, every pass of the daemon, for every backend. It is an
// exclusive lock on a file in the state directory, held from LockRun to
// Unlock; the operating system drops it when the process dies, so a killed
// run never leaves it held.
type RunLock struct {
	path   string
	unlock func() error
}

// DefaultLockWait is how long a run waits for another portfwd to finish.
const DefaultLockWait = 10 * time.Second

// lockName is the lock's name in the state directory. It kept this name
// when it stopped being the state file's own lock, so an older portfwd
// running beside this one still waits for it.
const lockName = "state.lock"

// LockRun takes the run lock in dir, creating dir, and waits up to wait
// for another portfwd to release it. A state directory portfwd cannot
// trust (PrepareStateDir), or a lock file that is not a regular file
// (OpenStateFile), is refused. The error says which lock is held and what
// to do.
func LockRun(dir string, wait time.Duration) (*RunLock, error) {
	if err := PrepareStateDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, lockName)
	unlock, err := flockWait(path, wait)
	if err != nil {
		return nil, err
	}
	return &RunLock{path: path, unlock: unlock}, nil
}

// Unlock releases the lock; a second call does nothing.
func (l *RunLock) Unlock() error {
	if l == nil || l.unlock == nil {
		return nil
	}
	err := l.unlock()
	l.unlock = nil
	return err
}

// PrepareStateDir creates the state directory dir when it is missing and
// refuses one that another user can write (trustStateDir): what portfwd
// keeps there decides which mappings it believes it owns, and so which it
// deletes. Everything that opens the state directory calls it first.
func PrepareStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating the state directory %s, where portfwd keeps its run lock and the NAT-PMP/PCP records: %w; "+
			"choose a directory this user can write with --state-dir or PORTFWD_STATE_DIR", dir, err)
	}
	return trustStateDir(dir)
}

// OpenStateFile opens a file of the state directory with flag (and perm,
// when flag may create it) only as a regular file: never through a
// symbolic link, since a link planted there could make portfwd — often
// root — create or read any file; never waiting to open a named pipe; and
// never a pipe, device or socket, whose read would hang or never end.
// Where the system has them, O_NOFOLLOW and O_NONBLOCK make the open
// itself safe; the checks before and after it say what is wrong.
func OpenStateFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, notRegular(path, fi) // not opened: opening a device may act
	}
	f, err := os.OpenFile(path, flag|openSafely, perm)
	if err != nil {
		if fi, lerr := os.Lstat(path); lerr == nil && !fi.Mode().IsRegular() {
			return nil, notRegular(path, fi) // replaced since the check above
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = notRegular(path, fi)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ErrStateFileTooLarge: a state file is larger than portfwd ever writes
// it, so it is not portfwd's (ReadStateFile); the caller says what to do.
var ErrStateFileTooLarge = errors.New("larger than portfwd ever writes")

// ReadStateFile reads a file portfwd keeps in its state directory, opened
// only as a regular file (OpenStateFile) and read only up to limit bytes:
// nil when there is none, ErrStateFileTooLarge when it is larger.
func ReadStateFile(path string, limit int64) ([]byte, error) {
	f, err := OpenStateFile(path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(raw)) > limit {
		err = ErrStateFileTooLarge
	}
	if err != nil {
		return nil, err
	}
	return raw, nil
}

// Stamp tells one version of a file from another: its modification time
// and size; the zero Stamp when there is no file (or it cannot be read,
// as while an editor replaces it).
type Stamp struct {
	mod  time.Time
	size int64
}

// StampOf is path's Stamp.
func StampOf(path string) Stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return Stamp{}
	}
	return Stamp{fi.ModTime(), fi.Size()}
}

// WriteFileAtomic replaces path with data so that a reader, or a run
// killed at any moment, sees the old file or the new one, never half of
// either: data goes to a temp file in path's directory named after
// pattern (as os.CreateTemp takes it), is synced, and renamed over path;
// the directory is then synced so the rename survives a power cut, where
// the system allows it. The temp file is removed after a failure (a kill
// -9 leaves it: a caller sweeps its own pattern).
func WriteFileAtomic(path, pattern string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone after the rename; cleans up after a failure
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		syncDir(dir)
	}
	return err
}

// syncDir makes a rename durable; where a directory cannot be synced it is
// skipped, the rename itself is still atomic.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// notRegular is the refusal of path, which fi shows is not a regular
// file.
func notRegular(path string, fi fs.FileInfo) error {
	if fi.Mode()&fs.ModeSymlink != 0 {
		to, _ := os.Readlink(path)
		return fmt.Errorf("%s is a symbolic link (to %q), and portfwd never follows links in its state directory "+
			"(one could make it create or read any file); remove the link, and portfwd creates the file anew", path, to)
	}
	return fmt.Errorf("%s is a %s, not a regular file, and portfwd would hang or fail reading it; remove it, and portfwd creates the file anew",
		path, fileKind(fi.Mode()))
}

// fileKind names what a mode that is not a regular file's is, for people.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file (" + m.Type().String() + ")"
}

// DefaultStateDir is /var/lib/portfwd for root, else $XDG_STATE_HOME/portfwd
// (~/.local/state/portfwd): where the run lock and the records of
// protocols that cannot list their mappings live.
func DefaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/portfwd"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "portfwd")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "portfwd-state")
	}
	return filepath.Join(home, ".local", "state", "portfwd")
}
