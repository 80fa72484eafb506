package lab

import (
	"net"
	"os"
	"sync"
)

// syslogPath is where glibc's syslog() sends log lines.
const syslogPath = "/dev/log"

// A machine without a syslog daemon (CI, containers) has nothing on
// /dev/log. glibc's syslog() then falls back to writing every line to
// /dev/console (miniupnpd opens its log with LOG_CONS), and a console write
// takes up to half a millisecond here. miniupnpd at -d logs each rule of its
// chains on every main-loop pass, so with 50 mappings each request cost it
// ~100 ms of console writes: a router slowed down by the lab, not one a
// real home router (which always has a syslog) shows. While a lab of this
// process is up, a sink on /dev/log takes those lines; miniupnpd's own
// stderr log, which the tests read, is unchanged.
var sink struct {
	sync.Mutex
	users int
	conn  *net.UnixConn
}

// acquireSyslog makes sure something listens on /dev/log and returns the
// function that gives the sink up again. A real syslog daemon is left
// alone; a stale socket left by a killed process is replaced.
func acquireSyslog() (release func()) {
	sink.Lock()
	defer sink.Unlock()
	if sink.users > 0 {
		sink.users++
		return releaseSyslog
	}
	if syslogServed() {
		return func() {}
	}
	removeDeadSocket()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: syslogPath, Net: "unixgram"})
	if err != nil {
		return func() {} // slower lab, same results
	}
	sink.conn, sink.users = conn, 1
	go discard(conn)
	return releaseSyslog
}

func releaseSyslog() {
	sink.Lock()
	defer sink.Unlock()
	if sink.users--; sink.users == 0 {
		sink.conn.Close()
		_ = os.Remove(syslogPath)
		sink.conn = nil
	}
}

// syslogServed reports whether a live socket answers on /dev/log.
func syslogServed() bool {
	c, err := net.Dial("unixgram", syslogPath)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// removeDeadSocket removes what a killed process left on /dev/log: a socket
// nobody answers on. Anything that is not a socket stays.
func removeDeadSocket() {
	if fi, err := os.Lstat(syslogPath); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(syslogPath)
	}
}

// discard reads log lines until the sink is closed.
func discard(conn *net.UnixConn) {
	buf := make([]byte, 8192)
	for {
		if _, _, err := conn.ReadFromUnix(buf); err != nil {
			return
		}
	}
}
