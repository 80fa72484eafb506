package probe

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// udpPayload is what the plain UDP probe sends. An echo service returns
// it; most other services answer something or nothing.
var udpPayload = []byte("portfwd probe\n")

// maxDatagram bounds every datagram read: the largest UDP payload over IPv4.
const maxDatagram = 65507

// resendEvery is how long a UDP probe waits before sending its request
// again: datagrams get lost, and one lost request must not fail a probe.
const resendEvery = time.Second

// probeUDP sends a small datagram and counts any datagram back as the
// answer. Silence is ErrNoAnswer, never open: UDP cannot tell a closed port
// from a filtered one, or from a server that ignores what we sent. An ICMP
// port unreachable (ECONNREFUSED on the connected socket) is ErrRefused.
func probeUDP(ctx context.Context, addr netip.AddrPort, d Dialer) (Info, time.Duration, error) {
	conn, closeConn, err := dial(ctx, d, "udp", addr)
	if err != nil {
		return Info{}, 0, err
	}
	defer closeConn()
	_, latency, err := exchangeUDP(ctx, conn, udpPayload)
	if err != nil {
		return Info{}, 0, err
	}
	return Info{}, latency, nil
}

// exchangeUDP sends req on conn, again every resendEvery, until a datagram
// comes back or ctx ends, and returns that datagram and the time since the
// last copy was sent.
func exchangeUDP(ctx context.Context, conn net.Conn, req []byte) ([]byte, time.Duration, error) {
	buf := make([]byte, maxDatagram)
	for {
		sent := time.Now()
		if _, err := conn.Write(req); err != nil {
			return nil, 0, udpError("sending", err)
		}
		// Setting the deadline would undo the one dial set on cancel;
		// checking ctx after it closes that window.
		_ = conn.SetReadDeadline(resendDeadline(ctx))
		if err := ctx.Err(); err != nil {
			return nil, 0, udpError("waiting for an answer", err)
		}
		n, err := conn.Read(buf)
		if err == nil {
			return buf[:n], time.Since(sent), nil
		}
		if ctx.Err() != nil || !isTimeout(err) {
			return nil, 0, udpError("waiting for an answer", err)
		}
	}
}

// resendDeadline is when to give up waiting for this copy of a request:
// resendEvery from now, or ctx's deadline if sooner.
func resendDeadline(ctx context.Context) time.Time {
	next := time.Now().Add(resendEvery)
	if dl, ok := ctx.Deadline(); ok && dl.Before(next) {
		return dl
	}
	return next
}

// udpError classifies a UDP failure; silence gets the reason it is never
// reported open.
func udpError(what string, err error) error {
	if isTimeout(err) && !isRefused(err) {
		return fmt.Errorf("%s: %w — UDP cannot tell closed from filtered, so this is never reported open", what, ErrNoAnswer)
	}
	return ioError(what, err)
}
