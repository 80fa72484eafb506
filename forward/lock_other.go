//go:build !unix

package forward

import "time"

// openSafely is nothing where O_NOFOLLOW and O_NONBLOCK are missing;
// OpenStateFile still refuses what is not a regular file.
const openSafely = 0

// trustStateDir trusts the directory: where there are no Unix permission
// bits they cannot tell who else may write it.
func trustStateDir(string) error { return nil }

// flockWait does not lock where flock is missing; Save is still atomic.
func flockWait(string, time.Duration) (func() error, error) { return func() error { return nil }, nil }
