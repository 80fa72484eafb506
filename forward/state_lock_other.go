//go:build !unix

package forward

import "time"

// lockDir does not lock where flock is missing; Save is still atomic.
func lockDir(string, time.Duration) (func() error, error) { return func() error { return nil }, nil }
