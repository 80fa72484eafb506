package pcp

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// exchange sends one request to the gateway's UDP port 5351 and waits for
// its answer, for both protocols: a socket connected to the server (the
// kernel then drops datagrams from anyone else, and reports an ICMP port
// unreachable as ECONNREFUSED), retransmission with a doubling wait, all
// bounded by a deadline. The schedules differ by RFC:
//
//   - NAT-PMP, RFC 6886 §3.1: 250 ms, doubling each time, no jitter; an
//     ICMP port unreachable ends the tries at once.
//   - PCP, RFC 6887 §8.1.1: doubling up to a cap, each wait scaled by a
//     random factor in [0.9, 1.1). The RFC starts at 3 s and never gives
//     up; a gateway on the LAN answers in milliseconds or not at all, and
//     a person is waiting, so portfwd starts at 250 ms, caps at 1 s and
//     stops at the deadline. An ICMP error is noted and the tries go on:
//     RFC 6887 gives no leave to stop, and a PCP server may be restarting.
type exchange struct {
	server netip.AddrPort
	// local is the address the socket is bound to; zero: the kernel's
	// choice. A PCP pinhole opens to the client IP of the request (RFC
	// 6887 §11.1), which must be the packet's source (§8.2).
	local    netip.Addr
	title    string        // the protocol, for people: "NAT-PMP", "PCP"
	fallback string        // the backends to try when it does not answer: "upnp"
	timeout  time.Duration // bounds one request, retransmissions included
	initial  time.Duration // the first wait
	maxWait  time.Duration // the longest wait; 0: no cap
	jitter   bool
	// stopOnRefused ends the tries at the first ICMP port unreachable.
	stopOnRefused bool
}

// maxDatagram is the read buffer: room to see a datagram larger than any
// answer is allowed to be.
const maxDatagram = pcpMaxSize + 4

// judge decides about one datagram from the server: done when it answers
// the request, err when it ends the exchange without an answer.
type judge func(b []byte) (done bool, err error)

// roundTrip sends req and returns the first datagram that decode accepts
// and match says answers it. Malformed and unmatched datagrams are
// dropped and the wait goes on, as RFC 6887 §8.3 has a PCP client ignore
// invalid responses and RFC 6886 §3.1 has a NAT-PMP client discard what is
// not its gateway's answer: one stray datagram never ends a request. Only
// a whole answer in the other version of the family (decodeNATPMP,
// decodePCP) ends the exchange, with an error wrapping
// forward.ErrNoGateway.
func roundTrip[T any](ctx context.Context, x *exchange, req []byte, decode func([]byte) (T, error), match func(T) bool) (T, error) {
	var got T
	err := x.do(ctx, req, func(b []byte) (bool, error) {
		m, err := decode(b)
		var v otherVersion
		if errors.As(err, &v) {
			return true, x.otherVersion(v)
		}
		if err != nil || !match(m) {
			return false, nil
		}
		got = m
		return true, nil
	})
	return got, err
}

// do is one request: it sends req until judge is done, or the deadline —
// ctx's or the timeout, whichever is sooner — passes, or ctx ends.
func (x *exchange) do(ctx context.Context, req []byte, judge judge) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s request to %s: %w", x.title, x.server, err)
	}
	ctx, cancel := context.WithTimeout(ctx, x.timeout)
	defer cancel()
	dl, _ := ctx.Deadline()
	budget := time.Until(dl)
	conn, err := net.DialUDP("udp", x.laddr(), net.UDPAddrFromAddrPort(x.server))
	if err != nil {
		return fmt.Errorf("opening a %s socket toward %s: %w", x.title, x.server, err)
	}
	defer conn.Close()
	// Unblock a pending read the moment ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	t := &attempt{x: x, conn: conn, judge: judge}
	if err := t.run(ctx, req); err != nil || t.done {
		return err
	}
	return x.silence(ctx, t.refused, budget)
}

// laddr is the address to bind the socket to, nil for the kernel's
// choice.
func (x *exchange) laddr() *net.UDPAddr {
	if !x.local.IsValid() {
		return nil
	}
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(x.local, 0))
}

// attempt is one request in flight on its own socket.
type attempt struct {
	x       *exchange
	conn    *net.UDPConn
	judge   judge
	done    bool
	refused bool // an ICMP port unreachable came back
}

// run sends and waits until an answer, an error, or the end of ctx.
func (t *attempt) run(ctx context.Context, req []byte) error {
	for wait := t.x.initial; ; wait = t.x.next(wait) {
		if err := t.send(req); err != nil {
			return err
		}
		if err := t.await(ctx, time.Now().Add(t.x.spread(wait))); err != nil || t.done {
			return err
		}
		if expired(ctx) || (t.refused && t.x.stopOnRefused) {
			return nil
		}
	}
}

// next is the wait after d: doubled, and capped.
func (x *exchange) next(d time.Duration) time.Duration {
	if d *= 2; x.maxWait > 0 {
		d = min(d, x.maxWait)
	}
	return d
}

// spread is RFC 6887 §8.1.1's (1 + RAND) * d, RAND in [-0.1, +0.1), for
// an exchange with jitter.
func (x *exchange) spread(d time.Duration) time.Duration {
	if !x.jitter {
		return d
	}
	return time.Duration(float64(d) * (0.9 + 0.2*mrand.Float64()))
}

// expired reports whether ctx has ended. It looks at the clock too: a
// deadline can pass a moment before ctx.Err says so, and a read clamped to
// that deadline would otherwise spin.
func expired(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ctx.Err() != nil || (ok && !time.Now().Before(dl))
}

// send sends the request once more.
func (t *attempt) send(req []byte) error {
	_, err := t.conn.Write(req)
	if errors.Is(err, syscall.ECONNREFUSED) {
		t.refused = true // an earlier datagram's ICMP error
		return nil
	}
	if err != nil {
		return fmt.Errorf("sending %s request to %s: %w", t.x.title, t.x.server, err)
	}
	return nil
}

// await reads until a datagram answers, until, or the end of ctx.
func (t *attempt) await(ctx context.Context, until time.Time) error {
	if dl, ok := ctx.Deadline(); ok && dl.Before(until) {
		until = dl
	}
	_ = t.conn.SetReadDeadline(until)
	if ctx.Err() != nil { // ended before the deadline above was set
		return nil
	}
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := t.conn.ReadFromUDPAddrPort(buf)
		if errors.Is(err, syscall.ECONNREFUSED) {
			// An ICMP port unreachable for one of our datagrams.
			if t.refused = true; t.x.stopOnRefused {
				return nil
			}
			continue
		}
		if err != nil {
			return t.readError(err)
		}
		if !t.x.fromServer(from) {
			continue
		}
		if done, err := t.judge(buf[:n]); done || err != nil {
			t.done = done
			return err
		}
	}
}

// readError is nil for a timeout (time to retransmit), else the error.
func (t *attempt) readError(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	return fmt.Errorf("reading %s response from %s: %w", t.x.title, t.x.server, err)
}

// fromServer reports whether a datagram came from the server's address and
// port (RFC 6886 §3.2, RFC 6887 §8.3); the connected socket already sees
// to it, this says so where it matters. Zones are not compared: the
// connected socket has the interface, and the kernel may name it by index.
func (x *exchange) fromServer(from netip.AddrPort) bool {
	return from.Addr().Unmap().WithZone("") == x.server.Addr().Unmap().WithZone("") && from.Port() == x.server.Port()
}

// silence explains why ctx ended without an answer. Silence and ICMP port
// unreachable wrap forward.ErrNoGateway: the gateway does not speak the
// protocol, as far as anyone can tell.
func (x *exchange) silence(ctx context.Context, refused bool, budget time.Duration) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("%s request to %s: %w", x.title, x.server, ctx.Err())
	}
	if refused {
		return &gatewayError{what: fmt.Sprintf("nothing listens for %s at %s (is %s switched off on the router?); try backend %s",
			x.title, x.server, x.title, x.fallback), cause: []error{forward.ErrNoGateway}}
	}
	return &gatewayError{what: fmt.Sprintf("%s did not answer at %s within %v (is %s switched off on the router?); try backend %s",
		x.title, x.server, budget.Round(time.Millisecond), x.title, x.fallback),
		cause: []error{forward.ErrNoGateway, context.DeadlineExceeded}}
}

// otherVersion is the error for an answer in version v (RFC 6887 §9): the
// gateway speaks another protocol of the family, so this one counts as not
// answering, and the user is told which one to use.
func (x *exchange) otherVersion(v otherVersion) error {
	try := x.fallback
	switch v {
	case natpmpVersion:
		try = "natpmp"
	case pcpVersion:
		try = "pcp"
	}
	return &gatewayError{what: fmt.Sprintf("the gateway at %s answered in %s: it does not speak %s; try backend %s",
		x.server, versionName(v), x.title, try), cause: []error{forward.ErrNoGateway}}
}

// versionName names version v of the family for people.
func versionName(v otherVersion) string {
	switch v {
	case natpmpVersion:
		return "NAT-PMP (version 0, RFC 6886) only"
	case 1:
		return "PCP version 1 (a draft of RFC 6887)"
	case pcpVersion:
		return "PCP (version 2, RFC 6887)"
	}
	return fmt.Sprintf("protocol version %d", uint8(v))
}
