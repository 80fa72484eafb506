//go:build !unix

package forward

import "time"

// flockWait does not lock where flock is missing; Save is still atomic.
func flockWait(string, time.Duration) (func() error, error) { return func() error { return nil }, nil }
