package pcp

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// mapper is one protocol's side of the Backend: how each request is asked,
// what the answer means, and the quirks of the protocol and of the routers
// that speak it. The Backend holds what is common: the records, the epoch
// check, what a moved port or a restart means for the user. There are two
// implementations, natpmpMapper (RFC 6886) and pcpMapper (RFC 6887).
//
// Every request returns the answer even when it carries a failure result
// code, so the epoch of a refusal is checked too; an error without an
// answer (silence, another version) leaves answer.answered false.
type mapper interface {
	// facts are the protocol's names and abilities, for Properties.
	facts() facts

	// announce proves the gateway speaks the protocol and returns its
	// epoch: NAT-PMP's external address request (RFC 6886 §3.2), which
	// also gives the external address; PCP's ANNOUNCE (RFC 6887 §14.1).
	announce(ctx context.Context) (answer, error)

	// mapPort creates or renews the mapping of e as requested (e.Key's
	// port suggested) for lifetime, never zero. A protocol that tells
	// mappings apart by a nonce (PCP) renews with e.Nonce and sets it
	// when empty, for the record.
	mapPort(ctx context.Context, e *entry, lifetime time.Duration) (answer, error)

	// unmap deletes the mapping recorded as e (lifetime 0, RFC 6886 §3.4,
	// RFC 6887 §15). An error wrapping errLapse means it cannot be
	// deleted, only left to run out: the record is forgotten anyway.
	unmap(ctx context.Context, e entry) (answer, error)

	// restarted applies the protocol's own rule for a gateway that lost
	// its mappings: epoch prev was seen at prevAt, cur is seen now.
	restarted(prev uint32, prevAt time.Time, cur uint32, now time.Time) bool

	// siblings are the records other than m's own that the gateway treats
	// as one with m, and so deletes along with it.
	siblings(records []entry, m forward.Mapping) []entry
}

// facts are what a protocol is called and what it can do.
type facts struct {
	name       string   // as gateway.backend and the records spell it: "natpmp", "pcp"
	title      string   // for people: "NAT-PMP", "PCP"
	protocols  []string // Properties.Protocols
	thirdParty forward.ThirdParty
	timeout    time.Duration // each request's timeout when Options.Timeout is zero
}

// answer is what the backend needs of a gateway's answer to one request.
type answer struct {
	answered bool   // the gateway answered (perhaps with a failure): epoch is valid
	epoch    uint32 // the gateway's epoch time (RFC 6886 §3.6, RFC 6887 §8.5)
	port     uint16 // the external port granted
	lifetime time.Duration
	// external is the external address the answer carried: NAT-PMP's
	// external address answer, PCP's assigned external address.
	external netip.Addr
}

// errLapse marks a mapping that cannot be deleted, only left to lapse.
var errLapse = errors.New("the mapping cannot be deleted")

// gatewayError is how this package reports a failure: a message written
// for the user (what failed, why, what to do next) and the causes callers
// branch on with errors.Is and errors.As — a result code (ResultCode,
// NATPMPResultCode), a forward sentinel, a *forward.ConflictError, a
// context error.
type gatewayError struct {
	what   string
	advice string // what to do; empty when what says it all
	cause  []error
	// wan marks a gateway that reported a failure of its WAN side: the
	// backend looks at the external address before the advice is final.
	wan bool
}

// Error is the message for the user.
func (e *gatewayError) Error() string {
	if e.advice == "" {
		return e.what
	}
	return e.what + ": " + e.advice
}

// Unwrap returns the causes.
func (e *gatewayError) Unwrap() []error { return e.cause }

// leaseToAsk is the lifetime to request for lease. A zero lifetime deletes
// (RFC 6886 §3.4, RFC 6887 §15), so a permanent lease is asked as the week
// an IGD:2 grants in place of "forever", and the planner renews it.
func leaseToAsk(lease time.Duration) time.Duration {
	if lease <= 0 {
		return forward.PermanentLeaseCap
	}
	return lease
}

// seconds is d in whole seconds for a 32-bit lifetime field, rounded up so
// that a sub-second lifetime is not a delete.
func seconds(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	s := (d + time.Second - 1) / time.Second
	return uint32(min(s, 1<<32-1))
}
