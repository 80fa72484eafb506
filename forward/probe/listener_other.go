//go:build !linux

package probe

import (
	"errors"
	"fmt"

	"github.com/portfwd/portfwd/forward"
)

// Bindings lists the sockets on this machine that take new traffic on
// port. Only Linux is supported: the lookup reads /proc. The error wraps
// errors.ErrUnsupported so callers can skip the local layer.
func Bindings(p forward.Protocol, port uint16) ([]Binding, error) {
	return nil, fmt.Errorf("listing listeners on %s/%d: listener lookup needs Linux /proc: %w",
		p, port, errors.ErrUnsupported)
}
