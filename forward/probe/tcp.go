package probe

import (
	"context"
	"net/netip"
	"time"
)

// probeTCP connects to addr: an accepted connection (the SYN answered by a
// SYN-ACK) is the answer, and the time to accept is the latency. It proves
// a port is open, not which server holds it.
func probeTCP(ctx context.Context, addr netip.AddrPort, d Dialer) (Info, time.Duration, error) {
	start := time.Now()
	_, closeConn, err := dial(ctx, d, "tcp", addr)
	if err != nil {
		return Info{}, 0, err
	}
	latency := time.Since(start)
	closeConn()
	return Info{}, latency, nil
}
