package main

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// sdNotify sends state to systemd's notification socket, the protocol of
// sd_notify(3), without linking libsystemd: one datagram to the unixgram
// socket named by $NOTIFY_SOCKET. It reports false, and no error, when
// the variable is unset (not started by systemd, or not Type=notify).
func sdNotify(state string) (bool, error) {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return false, nil
	}
	if strings.HasPrefix(name, "vsock:") {
		return false, fmt.Errorf("notifying systemd: NOTIFY_SOCKET %s: vsock is not supported", name)
	}
	// A name starting with '@' is a Linux abstract socket; the net package
	// turns the '@' into the leading NUL byte the kernel expects.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("notifying systemd: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("notifying systemd of %q: %w", state, err)
	}
	return true, nil
}

// sdReady tells systemd the daemon is up: for portfwd, after the first
// reconcile, so units ordered After= it find the forwards in place.
func sdReady() (bool, error) { return sdNotify("READY=1") }

// sdStopping tells systemd the daemon is shutting down (removing its
// forwards can take a while on a slow router).
func sdStopping() (bool, error) { return sdNotify("STOPPING=1") }

// sdStatus sets the one-line status `systemctl status` shows.
func sdStatus(status string) (bool, error) {
	return sdNotify("STATUS=" + strings.ReplaceAll(status, "\n", " "))
}
