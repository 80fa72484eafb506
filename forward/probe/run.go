package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// prober runs one kind of probe under ctx and returns what the server said
// about itself and the round trip of its answer.
type prober func(ctx context.Context, addr netip.AddrPort, d Dialer) (Info, time.Duration, error)

// probers maps each Kind to its implementation, one file per protocol.
var probers = map[Kind]prober{
	TCP:              probeTCP,
	UDP:              probeUDP,
	MinecraftJava:    probeMinecraftJava,
	MinecraftBedrock: probeBedrock,
	A2S:              probeA2S,
	HTTP:             probeHTTP,
	HTTPS:            probeHTTPS,
}

// Run probes addr with the application protocol kind names, under
// opts.Timeout. It never panics on what a server sends and always returns
// a Result: Answered, or Err wrapping ErrRefused, ErrNoAnswer or
// ErrBadAnswer (an unknown kind is the one error that wraps none of them).
func Run(ctx context.Context, kind Kind, addr netip.AddrPort, opts Options) Result {
	res := Result{Kind: kind, Addr: addr}
	p, ok := probers[kind]
	if !ok {
		res.Err = fmt.Errorf("unknown probe kind %q (known: %v)", kind, Kinds())
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, opts.timeout())
	defer cancel()
	info, latency, err := p(ctx, addr, opts.dialer())
	if err != nil {
		res.Err = ensureClassified(err)
		return res
	}
	res.Answered, res.Latency, res.Info = true, latency, info
	return res
}

// timeout is o.Timeout, or DefaultTimeout when unset.
func (o Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return DefaultTimeout
}

// dialer is o.Dialer, or a plain net.Dialer when unset.
func (o Options) dialer() Dialer {
	if o.Dialer != nil {
		return o.Dialer
	}
	return &net.Dialer{}
}

// dial opens network to addr and bounds every later read and write on the
// connection by ctx: its deadline, and its cancellation.
func dial(ctx context.Context, d Dialer, network string, addr netip.AddrPort) (net.Conn, func(), error) {
	conn, err := d.DialContext(ctx, network, addr.String())
	if err != nil {
		return nil, nil, dialError(err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	closeFn := func() {
		stop()
		_ = conn.Close()
	}
	return conn, closeFn, nil
}

// dialError classifies a failure to connect: a refusal is ErrRefused, and
// anything else (deadline, no route to host) means nothing answered.
func dialError(err error) error {
	if r := noRoute(err); r != nil {
		return fmt.Errorf("connecting: %w", r)
	}
	if isRefused(err) {
		return fmt.Errorf("connecting: %w", ErrRefused)
	}
	if isTimeout(err) {
		return fmt.Errorf("connecting: %w", ErrNoAnswer)
	}
	return fmt.Errorf("connecting: %w: %w", ErrNoAnswer, err)
}

// ioError classifies a failure while talking to a server that accepted us,
// doing what (e.g. "reading the status response"): a refusal (ICMP port
// unreachable on a connected UDP socket) is ErrRefused, a deadline is
// ErrNoAnswer, and a closed or reset connection is ErrBadAnswer, because
// a server of the expected protocol would have answered.
func ioError(what string, err error) error {
	switch {
	case errors.Is(err, ErrRefused), errors.Is(err, ErrNoAnswer), errors.Is(err, ErrBadAnswer):
		return fmt.Errorf("%s: %w", what, err)
	case noRoute(err) != nil:
		return fmt.Errorf("%s: %w", what, noRoute(err))
	case isRefused(err):
		return fmt.Errorf("%s: %w", what, ErrRefused)
	case isTimeout(err):
		return fmt.Errorf("%s: %w", what, ErrNoAnswer)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s: %w: the server closed the connection", what, ErrBadAnswer)
	case errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("%s: %w: the server reset the connection", what, ErrBadAnswer)
	}
	return fmt.Errorf("%s: %w: %w", what, ErrBadAnswer, err)
}

// badAnswer is an ErrBadAnswer with a short reason.
func badAnswer(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadAnswer, fmt.Sprintf(format, args...))
}

// ensureClassified makes sure err wraps one of the sentinel errors, so
// callers can always branch with errors.Is.
func ensureClassified(err error) error {
	if errors.Is(err, ErrRefused) || errors.Is(err, ErrNoAnswer) || errors.Is(err, ErrBadAnswer) {
		return err
	}
	return ioError("probing", err)
}

// routeError is ErrNoRoute with its cause, said for people.
type routeError struct{ errno syscall.Errno }

func (e routeError) Error() string {
	if e.errno == syscall.ENETUNREACH {
		return "no route to the address: it is on none of this machine's networks (network is unreachable)"
	}
	return "no route to the address: no host answered for it on its network (no route to host)"
}

func (e routeError) Unwrap() []error { return []error{ErrNoRoute, ErrNoAnswer, e.errno} }

// routeCause is the routeError err wraps, said for people without the
// layers of context around it; err itself when it wraps none.
func routeCause(err error) error {
	var re routeError
	if errors.As(err, &re) {
		return re
	}
	return err
}

// noRoute is err as an ErrNoRoute, or nil when it is not one.
func noRoute(err error) error {
	for _, errno := range []syscall.Errno{syscall.ENETUNREACH, syscall.EHOSTUNREACH} {
		if errors.Is(err, errno) {
			return routeError{errno}
		}
	}
	return nil
}

// isRefused reports a TCP RST or an ICMP port unreachable.
func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}

// isTimeout reports a deadline or a cancelled probe.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) ||
		(errors.As(err, &ne) && ne.Timeout())
}
