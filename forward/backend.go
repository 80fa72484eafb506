package forward

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// Backend is one way of talking to a gateway (UPnP IGD, NAT-PMP, PCP,
// iptables). Implementations must pass forwardtest.Run.
//
// Rules every implementation keeps:
//   - It never changes a mapping it was not asked to change.
//   - Errors wrap one of the sentinel errors below when one applies, so
//     callers can branch with errors.Is, and say what to do next.
//   - Methods honour ctx cancellation and deadlines.
type Backend interface {
	// Properties describes the backend and the gateway it talks to. It does
	// no I/O.
	Properties() Properties

	// List returns every mapping on the gateway, owned and foreign, in any
	// order. It never mutates the gateway. A protocol that cannot enumerate
	// mappings answers from portfwd's own state and sets
	// Properties().ListsFromState.
	List(ctx context.Context) ([]Mapping, error)

	// Add installs m, or refreshes it when the same mapping already exists,
	// and returns the mapping as granted: the lease (and, for some
	// protocols, the external port) may differ from the request. A mapping
	// held by someone else on m.Key — another internal host, or another
	// owner in the description, even on this host — is a *ConflictError
	// (ErrConflict), and stays as it was.
	Add(ctx context.Context, m Mapping) (Mapping, error)

	// Delete removes the mapping on m.Key. A mapping that is already absent
	// is not an error.
	Delete(ctx context.Context, m Mapping) error

	// ExternalAddr is the WAN address the gateway reports for itself.
	ExternalAddr(ctx context.Context) (netip.Addr, error)
}

// Properties says what a backend is and what it can do. Detection chooses
// among the backends that answered by these fields alone, and the
// conformance suite (forwardtest.Run) checks that each one is true.
type Properties struct {
	Name    string // as gateway.backend spells it: "upnp", "natpmp", "pcp", "iptables"
	Gateway string // where it talks to, for people: "http://192.168.1.1:5000/rootDesc.xml"
	// Protocols the gateway answered, e.g. "UPnP IGD:2 WANIPConnection:2".
	Protocols []string
	// ListsFromState is true when List answers from portfwd's own records
	// because the protocol cannot enumerate (NAT-PMP, PCP): mappings made by
	// others are never listed.
	ListsFromState bool
	// PermanentLeases is true when a zero lease may be granted as "forever".
	// When false, Add of a zero lease returns the finite lease granted in
	// its place, and the planner renews it.
	PermanentLeases bool
	// ThirdParty says whether mappings may point at hosts other than the
	// one running portfwd.
	ThirdParty ThirdParty
	// Local is true when the gateway is the machine portfwd runs on
	// (iptables): no other portfwd shares it, so every mapping carrying
	// portfwd's tag is this one's, whatever host it forwards to.
	Local bool
	// Hairpin is true when the backend writes hairpin NAT for mappings
	// that ask for it (Mapping.Hairpin) and reports it in List.
	Hairpin bool
	// IPv6 is true when the backend opens IPv6 pinholes (mappings whose
	// Key.Family is IPv6) and lists the ones it holds. Apply refuses
	// pinholes on a backend without it (NoIPv6Error) before asking.
	IPv6 bool
}

// ThirdParty is whether a backend can map ports to another host than the
// one asking, ordered from never to always.
type ThirdParty int

// The ways a backend can treat a mapping for another host.
const (
	// ThirdPartyNo: the protocol maps only for the host that asks (NAT-PMP,
	// RFC 6886 §3.3); Add for another host is ErrNotAuthorized.
	ThirdPartyNo ThirdParty = iota
	// ThirdPartyIfAllowed: the protocol allows it, but routers refuse it by
	// default (UPnP secure mode).
	ThirdPartyIfAllowed
	// ThirdPartyYes: the protocol is made for it (PCP's THIRD_PARTY option,
	// RFC 6887 §13.1; iptables on the router itself).
	ThirdPartyYes
)

var thirdPartyNames = [...]string{"no", "if allowed", "yes"}

// String is "no", "if allowed" or "yes".
func (t ThirdParty) String() string {
	if t < 0 || int(t) >= len(thirdPartyNames) {
		return "unknown"
	}
	return thirdPartyNames[t]
}

// Sentinel errors callers branch on. Backends wrap them with context.
var (
	// ErrNoGateway: no gateway answered discovery.
	ErrNoGateway = errors.New("no gateway found")
	// ErrConflict: someone else holds the mapping's external port.
	ErrConflict = errors.New("port is held by another mapping")
	// ErrNotAuthorized: the gateway refused the request (UPnP secure mode,
	// a disabled UPnP, a port outside the allowed range).
	ErrNotAuthorized = errors.New("gateway refused the request")
	// ErrListUnsupported: the protocol cannot enumerate mappings.
	ErrListUnsupported = errors.New("gateway cannot list mappings")
	// ErrDoubleNAT: the gateway's own WAN address is private or shared
	// (carrier-grade NAT), so a mapping on it cannot be reached from the
	// internet.
	ErrDoubleNAT = errors.New("gateway is behind another NAT")
)

// NoGateway marks err, which says in its own words that no gateway
// answered and what to do, as ErrNoGateway (errors.Is), without the
// sentinel's "no gateway found" repeating it at the end.
func NoGateway(err error) error { return &noGatewayError{err} }

type noGatewayError struct{ err error }

func (e *noGatewayError) Error() string   { return e.err.Error() }
func (e *noGatewayError) Unwrap() []error { return []error{e.err, ErrNoGateway} }

// ConflictError reports that Holder already occupies the key a mapping wants.
type ConflictError struct {
	Want   Mapping
	Holder Mapping // as the gateway reported it; zero when it would not say
}

func (e *ConflictError) Error() string {
	holder := "another client"
	if e.Holder.InternalHost.IsValid() {
		holder = netip.AddrPortFrom(e.Holder.InternalHost, e.Holder.InternalPort).String()
		if e.Holder.Description != "" {
			holder += fmt.Sprintf(" (%q)", e.Holder.Description)
		}
	}
	return fmt.Sprintf("%s is already forwarded to %s; remove that mapping on the router or pick another external_port", e.Want.Key, holder)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }
