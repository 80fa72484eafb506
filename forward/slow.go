package forward

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrSlowGateway: the gateway did not answer one request within the
// request timeout (portfwd's --timeout). Backends bound each request on
// its own, so one slow answer fails that change only; the others still
// get their own time. A *SlowError says which request and how long.
var ErrSlowGateway = errors.New("the gateway did not answer in time")

// SlowError is a request the gateway did not answer within After, the
// request timeout. Routers do slow down: miniupnpd, as Debian and OpenWrt
// ship it, takes longer for every AddPortMapping as its table grows, up to
// a second each with a few dozen mappings on a small router (LAB.md), so
// the error names the flag that gives each request more time rather than
// the HTTP client's "context deadline exceeded". It is ErrSlowGateway and
// context.DeadlineExceeded to errors.Is, so auto detection counts a
// gateway that never answered as silence (IsSilence).
type SlowError struct {
	Request string        // what went unanswered: "AddPortMapping", "the PCP MAP request"
	After   time.Duration // the request timeout it ran out of
}

func (e *SlowError) Error() string {
	return fmt.Sprintf("the gateway did not answer %s within %s; it may be slow with many mappings: raise --timeout (now %s)",
		e.Request, e.After, e.After)
}

// Unwrap makes errors.Is(err, ErrSlowGateway) and
// errors.Is(err, context.DeadlineExceeded) true.
func (e *SlowError) Unwrap() []error { return []error{ErrSlowGateway, context.DeadlineExceeded} }

// WithinRequestTimeout runs one request to the gateway under a context
// that ends after timeout (or with ctx, should that end first), and turns
// the end of that timeout into a *SlowError naming request. An error after
// ctx itself ended (Ctrl-C) is returned as it is. A backend calls it once
// per request, so every request gets the whole timeout however long the
// requests before it took.
func WithinRequestTimeout(ctx context.Context, timeout time.Duration, request string, call func(ctx context.Context) error) error {
	deadline := time.Now().Add(timeout)
	rctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	err := call(rctx)
	if err == nil || ctx.Err() != nil || time.Now().Before(deadline) {
		return err // an answer, an interruption, or a failure in time
	}
	if dl, ok := ctx.Deadline(); ok && !dl.After(deadline) {
		return err // the caller's own deadline came first
	}
	return &SlowError{Request: request, After: timeout}
}
