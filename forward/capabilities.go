package forward

import (
	"context"
	"net/netip"
)

// Optional capabilities. A backend has one when it implements the small
// interface; callers find it with As, which also looks through decorators
// (ReadOnly), so wrapping a backend never hides what it can do. Each
// interface states the rule its implementations keep.

// Locator is a backend that knows the address this host uses toward the
// gateway: the internal client a secure-mode gateway accepts, and what
// "internal_host: self" in the config stands for. LocalAddr does no I/O and
// returns the zero Addr when there is none.
type Locator interface {
	LocalAddr() netip.Addr
}

// Warner is a backend that learns things the user should know although
// nothing failed: a gateway that restarted and lost its mappings, a host
// that cannot forward yet. Warnings returns what was learnt since the last
// call, oldest first, and forgets it, so a backend kept for many passes
// never reports one thing twice.
type Warner interface {
	Warnings() []string
}

// TearDowner is a backend that sets up something of its own beside the
// mappings (the iptables backend's chains and jumps). Teardown removes it;
// callers call it only once no owned mapping is left, and it never removes
// anything it did not set up.
type TearDowner interface {
	Teardown(ctx context.Context) error
}

// Finder is a backend that reads the mapping on one key in one request,
// where List costs a request per mapping on the gateway (a UPnP IGD:1
// walks its table entry by entry). The Loop's check asks it for one held
// mapping at a time instead of listing, so that watching a gateway costs
// the same whatever its table holds. Find never changes the gateway. It
// returns the mapping on k as List would report it, or found false when
// the gateway answered that it holds none on k; any other answer is an
// error, which says nothing about the mapping (callers then List). Find
// keeps the backend's own rules for requests (a cached gateway address is
// proven or rediscovered as by List).
type Finder interface {
	Find(ctx context.Context, k Key) (m Mapping, found bool, err error)
}

// Unwrapper is a decorator: a Backend that adds behaviour to another one,
// returned by Unwrap.
type Unwrapper interface {
	Unwrap() Backend
}

// As finds the capability T in b or in the backends b decorates, nearest
// first.
func As[T any](b Backend) (T, bool) {
	for b != nil {
		if t, ok := b.(T); ok {
			return t, true
		}
		u, ok := b.(Unwrapper)
		if !ok {
			break
		}
		b = u.Unwrap()
	}
	var zero T
	return zero, false
}

// SelfOf is the address b's gateway sees this host as (Locator), or the
// zero Addr.
func SelfOf(b Backend) netip.Addr {
	if l, ok := As[Locator](b); ok {
		return l.LocalAddr()
	}
	return netip.Addr{}
}

// WarningsOf drains b's warnings (Warner), or returns none.
func WarningsOf(b Backend) []string {
	if w, ok := As[Warner](b); ok {
		return w.Warnings()
	}
	return nil
}
