package lab

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The stand-in servers and client the lab uses to prove a forward: a TCP
// server that greets, a UDP server that echoes, and one exchange with
// either. The tests run them inside a namespace with Serve and ExchangeFrom;
// portfwd-lab runs them inside `ip netns exec`.

// ServeTCP writes "<greeting> (you are <peer>)" to each connection on ln,
// so a reply also shows whether the router rewrote the source address. It
// returns when ln is closed. log, if not nil, gets a line per connection.
func ServeTCP(ln net.Listener, greeting string, log io.Writer) error {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return err
		}
		logf(log, "connection from %s\n", conn.RemoteAddr())
		fmt.Fprintf(conn, "%s (you are %s)\n", greeting, conn.RemoteAddr())
		conn.Close()
	}
}

// ServeUDP answers each datagram on pc with "<greeting>: <datagram>". It
// returns when pc is closed.
func ServeUDP(pc net.PacketConn, greeting string, log io.Writer) error {
	buf := make([]byte, 64*1024)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		logf(log, "datagram from %s\n", from)
		_, _ = pc.WriteTo([]byte(greeting+": "+string(buf[:n])), from)
	}
}

// Exchange connects to addr, sends msg when network is udp, and returns
// the first reply line without its newline. No reply within timeout is an
// error: a UDP forward is never reported working without an answer.
func Exchange(network, addr, msg string, timeout time.Duration) (string, error) {
	conn, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if network == "udp" {
		if _, err := conn.Write([]byte(msg)); err != nil {
			return "", err
		}
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout() && reply == "":
		return "", fmt.Errorf("no reply from %s %s within %v", network, addr, timeout)
	case err != nil && reply == "":
		return "", fmt.Errorf("reading from %s %s: %w", network, addr, err)
	}
	return strings.TrimRight(reply, "\n"), nil
}

// Serve runs ServeTCP or ServeUDP on port inside h's namespace until t
// ends.
func (l *Lab) Serve(t testing.TB, h Host, network string, port int, greeting string) {
	t.Helper()
	addr := ":" + strconv.Itoa(port)
	if network == "udp" {
		pc := l.ListenUDP(t, h, addr)
		go ServeUDP(pc, greeting, nil)
		return
	}
	ln := l.ListenTCP(t, h, addr)
	go ServeTCP(ln, greeting, nil)
}

// ListenTCP opens a TCP listener on addr inside h's namespace, closed when
// t ends; a test serves it with whatever protocol it needs.
func (l *Lab) ListenTCP(t testing.TB, h Host, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := l.Do(h, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatalf("listening on tcp %s in the %s namespace: %v", addr, h, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// ListenUDP opens a UDP socket on addr inside h's namespace, closed when t
// ends.
func (l *Lab) ListenUDP(t testing.TB, h Host, addr string) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	if err := l.Do(h, func() (err error) { pc, err = net.ListenPacket("udp", addr); return err }); err != nil {
		t.Fatalf("listening on udp %s in the %s namespace: %v", addr, h, err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// ExchangeFrom runs Exchange from inside h's namespace.
func (l *Lab) ExchangeFrom(h Host, network, addr, msg string) (string, error) {
	var reply string
	err := l.Do(h, func() (err error) {
		reply, err = Exchange(network, addr, msg, 2*time.Second)
		return err
	})
	return reply, err
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format, args...)
	}
}
