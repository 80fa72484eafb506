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

// Locator6 is a backend that knows the IPv6 address this host opens
// pinholes for: what "internal_host: self" stands for on IPv6 rules, in
// place of the one ChooseSelfIPv6 would choose. LocalAddr6 does no I/O.
type Locator6 interface {
	LocalAddr6() SelfIPv6
}

// Warner is a backend that learns things the user should know although
// nothing failed: a gateway that restarted and lost its mappings, a host
// that cannot forward yet. Warnings returns what was learnt since the last
// call, oldest first, and forgets it, so a backend kept for many passes
// never reports one thing twice.
type Warner interface {
	Warnings() []string
}

// HostChecker is a backend that knows, without asking the gateway
// anything, whether the gateway can reach a LAN host it would forward to:
// the iptables backend, on the router itself, knows the router's networks
// and routes. HostProblem says why the gateway cannot reach host, or ""
// when it can or cannot tell; what to do (check the rule's internal_host)
// is the caller's to say. It is for a warning before any change and for
// check's diagnosis, never a refusal: a forward to a host the gateway
// cannot reach is made, and goes nowhere.
type HostChecker interface {
	HostProblem(host netip.Addr) string
}

// TearDowner is a backend that sets up something of its own beside the
// mappings (the iptables backend's chains and jumps). Teardown removes it;
// callers call it only once no owned mapping is left, and it never removes
// anything it did not set up.
type TearDowner interface {
	Teardown(ctx context.Context) error
}

// Batcher is a backend that can make many changes in one write to the
// gateway (the iptables backend: one iptables-restore transaction for a
// pass, instead of an iptables call per rule). Apply uses it whenever a
// plan makes calls; Begin's error makes Apply go change by change.
//
// A decorator that changes what Add or Delete do (ReadOnly refuses them)
// must implement Batcher too and do the same to a batch: As finds the
// nearest Batcher, so Apply would otherwise go around the decorator.
type Batcher interface {
	Begin(ctx context.Context) (Batch, error)
}

// Batch is one transaction of a Batcher, used once and by one goroutine.
// Its rules:
//
//   - Add and Delete stage a change and answer as the backend's own Add and
//     Delete would (the grant, the conflict, the wording of the error), but
//     write nothing yet; later calls see what earlier ones staged.
//   - A call that returns an error stages nothing: that change fails alone.
//   - Commit writes everything staged in one go, or returns an error. A
//     failed Commit may have written part of it (iptables-restore commits
//     table by table), so it leaves the gateway where the backend's own
//     Add and Delete, run again for each staged change, finish the job:
//     Apply then does exactly that, so each change gets its own outcome;
//     the Commit error itself is the backend's to tell (Warner).
type Batch interface {
	Add(ctx context.Context, m Mapping) (Mapping, error)
	Delete(ctx context.Context, m Mapping) error
	Commit(ctx context.Context) error
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

// Self6Of is the IPv6 address b opens pinholes for (Locator6), else the
// one ChooseSelfIPv6 chooses next to self, this host's address toward
// the gateway.
func Self6Of(b Backend, self netip.Addr) SelfIPv6 {
	if l, ok := As[Locator6](b); ok {
		return l.LocalAddr6()
	}
	return ChooseSelfIPv6(self)
}

// WarningsOf drains b's warnings (Warner), or returns none.
func WarningsOf(b Backend) []string {
	if w, ok := As[Warner](b); ok {
		return w.Warnings()
	}
	return nil
}
