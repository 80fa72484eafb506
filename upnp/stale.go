package upnp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/huin/goupnp/soap"

	"github.com/portfwd/portfwd/forward"
)

// staleCheck proves an IGD built from the discovery cache. The entry may
// be stale — the router restarted on another port, or this is another
// network with the same gateway address — and only a request can tell. A
// SOAP fault, even an error code, proves the control URL is right; a
// failure below SOAP (refused, timed out, HTTP 404, not SOAP) does not, so
// the entry is deleted, the gateway rediscovered once, and the request
// retried on what discovery found.
type staleCheck struct {
	mu         sync.Mutex
	pending    atomic.Bool // no request has answered yet
	path       string      // the cache entry
	rediscover func(ctx context.Context) (*IGD, error)
}

// unproven reports whether c still waits for its first answer; a nil
// check (an IGD from discovery) is proven.
func (c *staleCheck) unproven() bool { return c != nil && c.pending.Load() }

// guard runs call, one request's worth of work on g, under ctx. On an
// unproven cached IGD it runs alone, and a transport failure makes g
// rediscover and retry. An error after ctx ended says so (ctxError).
func (g *IGD) guard(ctx context.Context, call func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return ctxError(ctx, g.guarded(ctx, call))
}

// ctxError makes err, from a call under ctx, wrap ctx's error when ctx
// has ended: goupnp words transport failures with %v, which drops
// context.Canceled and context.DeadlineExceeded.
func ctxError(ctx context.Context, err error) error {
	cause := ctx.Err()
	if err == nil || cause == nil || errors.Is(err, cause) {
		return err
	}
	return endedError{err, cause}
}

// endedError is an error that happened because its context ended.
type endedError struct{ err, cause error }

func (e endedError) Error() string   { return e.err.Error() }
func (e endedError) Unwrap() []error { return []error{e.err, e.cause} }

func (g *IGD) guarded(ctx context.Context, call func() error) error {
	c := g.check
	if !c.unproven() {
		return call()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.pending.Load() {
		return call()
	}
	err := call()
	if ctx.Err() != nil || !transportFailure(err) {
		c.pending.Store(false)
		return err
	}
	os.Remove(c.path)
	fresh, derr := c.rediscover(ctx)
	if derr != nil {
		c.pending.Store(false)
		return fmt.Errorf("%w (the cached gateway address did not answer, and rediscovery failed: %v)", err, derr)
	}
	g.adopt(fresh)
	c.pending.Store(false)
	return call()
}

// adopt takes over what a fresh discovery found. It runs under the check's
// lock before any other request has been sent through g.
func (g *IGD) adopt(fresh *IGD) {
	g.client = fresh.client
	g.rootURL, g.controlURL, g.deviceType = fresh.rootURL, fresh.controlURL, fresh.deviceType
	g.service, g.local, g.family = fresh.service, fresh.local, fresh.family
	g.udn, g.pinholeService, g.v6 = fresh.udn, fresh.pinholeService, fresh.v6
	g.snap.forget()
}

// goupnpTransportErrors are how goupnp words the failures of a SOAP call
// below SOAP (soap.SOAPClient.PerformActionCtx): it formats them with %v,
// so their wording is all that tells them from other errors.
var goupnpTransportErrors = []string{
	"goupnp: error performing SOAP HTTP request", // refused, timed out, reset
	"goupnp: SOAP request got HTTP",              // an HTTP error without a SOAP fault
	"goupnp: error decoding response body",       // not a SOAP envelope
}

// transportFailure reports whether err is a failure below SOAP. A request
// the gateway did not answer in time (forward.ErrSlowGateway) is one: a
// cached address that answers nothing may be another network's.
func transportFailure(err error) bool {
	var fault *soap.SOAPFaultError
	if err == nil || soapCode(err) != 0 || errors.As(err, &fault) {
		return false
	}
	if errors.Is(err, forward.ErrSlowGateway) {
		return true
	}
	for _, s := range goupnpTransportErrors {
		if strings.Contains(err.Error(), s) {
			return true
		}
	}
	return false
}
