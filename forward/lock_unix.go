//go:build unix

package forward

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

// flockWait takes an exclusive flock on path, polling until wait runs out,
// so a second portfwd waits for the first instead of interleaving with it.
// The lock dies with the process, so a killed run never leaves it held.
func flockWait(path string, wait time.Duration) (func() error, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
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
