//go:build linux

package probe

import (
	"encoding/binary"
	"os"

	"github.com/portfwd/portfwd/forward"
)

// Bindings lists the sockets on this machine that take new traffic on port:
// TCP sockets in LISTEN, UDP sockets bound to the port and not connected.
// It reads /proc/net/{tcp,tcp6} or /proc/net/{udp,udp6}, and finds each
// socket's owner by matching its inode against the /proc/<pid>/fd/* links;
// owners portfwd may not see (other users' processes, when not root) are
// left with PID 0. The sockets are those of portfwd's network namespace.
func Bindings(p forward.Protocol, port uint16) ([]Binding, error) {
	r := procReader{fsys: os.DirFS("/proc"), order: binary.NativeEndian}
	return r.bindings(p, port)
}
