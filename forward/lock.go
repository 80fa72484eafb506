package forward

import (
	"fmt"
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
// for another portfwd to release it. The error says which lock is held
// and what to do.
func LockRun(dir string, wait time.Duration) (*RunLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
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
