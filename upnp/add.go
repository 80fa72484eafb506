package upnp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// Add installs m with AddPortMapping (WANIPConnection:1 §2.4.16), or
// refreshes it, and returns the mapping as granted. UPnP error codes become
// the forward sentinel errors; see explain. An IPv6 mapping is a pinhole
// (pinholes.add), refused with a *forward.NoIPv6Error where the IGD has no
// IPv6 side.
func (g *IGD) Add(ctx context.Context, m forward.Mapping) (forward.Mapping, error) {
	if m.Family == forward.IPv6 {
		if !g.v6.usable() {
			return forward.Mapping{}, &forward.NoIPv6Error{Key: m.Key, Backend: "upnp"}
		}
		return g.v6.add(ctx, m)
	}
	var got forward.Mapping
	err := g.guard(ctx, func() error {
		var err error
		got, err = g.add(ctx, m)
		return err
	})
	if err != nil {
		if !errors.Is(err, errHeld) {
			g.snap.forget()
		}
		return forward.Mapping{}, err
	}
	g.snap.set(got)
	return got, nil
}

// errHeld marks the conflicts Add finds before sending anything; the
// snapshot stays valid after them.
var errHeld = errors.New("held")

// add is Add without the cache guard and the snapshot update. A mapping
// with AnyExternal whose port is taken walks up to the next free one.
func (g *IGD) add(ctx context.Context, m forward.Mapping) (forward.Mapping, error) {
	got, err := g.addOn(ctx, m)
	if !m.AnyExternal || !errors.Is(err, forward.ErrConflict) {
		return got, err
	}
	return g.addAny(ctx, m, err)
}

// anyPortTries is how many ports above a taken one addAny tries: enough
// to pass a few other servers of the same game, few enough that a router
// refusing everything fails in seconds.
const anyPortTries = 16

// addAny maps m on the first free port above its suggested one, taken
// being the error that port got. AddAnyPortMapping (WANIPConnection:2
// §2.5.18) would let the router choose, but IGD:1 routers lack it and
// miniupnpd answers it with the same upward search, so one way serves both.
func (g *IGD) addAny(ctx context.Context, m forward.Mapping, taken error) (forward.Mapping, error) {
	for i := 1; i <= anyPortTries && int(m.ExternalPort)+i <= math.MaxUint16; i++ {
		try := m
		try.ExternalPort += uint16(i)
		got, err := g.addOn(ctx, try)
		if !errors.Is(err, forward.ErrConflict) {
			return got, err
		}
	}
	return forward.Mapping{}, fmt.Errorf("%w; external_port: any tried the next %d ports too, all taken: free some, or give a fixed external_port", taken, anyPortTries)
}

// addOn installs m on its own external port.
func (g *IGD) addOn(ctx context.Context, m forward.Mapping) (forward.Mapping, error) {
	if err := g.makeRoom(ctx, m); err != nil {
		return forward.Mapping{}, err
	}
	lease := leaseSeconds(m.Lease)
	err := g.addPortMapping(ctx, m, lease)
	if lease > 0 && wantsPermanent(err) {
		// Quirk: IGD:1 routers that only keep permanent mappings answer 725
		// OnlyPermanentLeasesSupported (WANIPConnection:1 §2.4.16), and
		// older ones 402 Invalid Args, to any finite lease. Ask again for a
		// permanent one; the caller sees the granted lease differ.
		lease = 0
		err = g.addPortMapping(ctx, m, lease)
	}
	if err == nil {
		return g.granted(ctx, m, lease), nil
	}
	got, err := g.explain(ctx, m, err)
	if err != nil {
		return forward.Mapping{}, fmt.Errorf("adding mapping %s: %w", m.Key, err)
	}
	return got, nil
}

// makeRoom checks who holds m's key before AddPortMapping: someone else
// is a conflict. An older portfwd's mapping that m adopts (forward.Adopts)
// with another description is deleted first: routers keep a mapping's
// description when its own client adds it again (miniupnpd 2.3.1 logs
// "updating existing port mapping" and keeps the old one), so re-tagging
// it costs one round trip during which the port is free.
func (g *IGD) makeRoom(ctx context.Context, m forward.Mapping) error {
	holder, held := g.holder(ctx, m.Key)
	switch {
	case !held:
		return nil
	case !mayReplace(holder, m):
		ce := &forward.ConflictError{Want: m, Holder: holder}
		return fmt.Errorf("adding mapping %s: %w", m.Key, heldError{ce})
	case forward.SameDescription(holder.Description, m.Description) || !forward.Adopts(holder, m):
		return nil
	}
	err := asSOAPError("DeletePortMapping", g.client.DeletePortMappingCtx(ctx, "", m.ExternalPort, wireProtocol(m.Protocol)))
	if err != nil && soapCode(err) != codeNoSuchEntry {
		return fmt.Errorf("re-tagging mapping %s (%q): %w", m.Key, holder.Description, err)
	}
	return nil
}

// heldError is a *forward.ConflictError found before AddPortMapping.
type heldError struct{ *forward.ConflictError }

func (e heldError) Unwrap() []error { return []error{e.ConflictError, errHeld} }

// holder is the mapping on k, if any: from the snapshot when List ran
// moments ago, else from GetSpecificPortMappingEntry. A failed lookup
// counts as no holder; AddPortMapping then gets the final word.
func (g *IGD) holder(ctx context.Context, k forward.Key) (forward.Mapping, bool) {
	if m, present, known := g.snap.lookup(k); known {
		return m, present
	}
	m, err := g.specific(ctx, k)
	return m, err == nil
}

// mayReplace reports whether Add may overwrite holder with m. miniupnpd
// (and most routers) silently replace a mapping when the same internal
// client asks again, so a game's own UPnP mapping on this host would be
// taken over; portfwd only replaces what is already m, or what portfwd
// made for the same host and the same config (another PC's portfwd
// mapping is that PC's, another config's is that config's; an older
// portfwd's for the same rule is adopted: forward.Adopts). A mapping that
// takes any port replaces only its own: the port it tries may be another
// rule's.
func mayReplace(holder, m forward.Mapping) bool {
	if m.AnyExternal {
		return holder.InternalHost == m.InternalHost && forward.SameDescription(holder.Description, m.Description)
	}
	return holder.InternalHost == m.InternalHost &&
		(holder.Description == m.Description || forward.Adopts(holder, m))
}

// addPortMapping sends one AddPortMapping. NewRemoteHost is "" (any remote
// host): portfwd forwards from the whole internet.
func (g *IGD) addPortMapping(ctx context.Context, m forward.Mapping, lease uint32) error {
	err := g.client.AddPortMappingCtx(ctx, "", m.ExternalPort, wireProtocol(m.Protocol),
		m.InternalPort, m.InternalHost.String(), m.Enabled, m.Description, lease)
	return asSOAPError("AddPortMapping", err)
}

// wantsPermanent reports whether err refuses a finite lease.
func wantsPermanent(err error) bool {
	code := soapCode(err)
	return code == codeOnlyPermanentLeases || code == codeInvalidArgs
}

// leaseSeconds converts a lease to the ui4 seconds UPnP carries, rounding
// up so that a sub-second lease is not sent as 0 (permanent).
func leaseSeconds(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	s := (d + time.Second - 1) / time.Second
	if s > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(s)
}

// maxLeaseV2 is the longest lease WANIPConnection:2 grants (§2.3.16).
const maxLeaseV2 = 604800

// granted is m as the gateway keeps it after an AddPortMapping with lease.
// Routers change leases silently: WANIPConnection:2 §2.3.16 turns 0 (and
// anything longer) into 604800 seconds, and miniupnpd built with IGD:2
// support does so even when it advertises IGD:1. So such a lease is read
// back; a lease between 1 s and a week is granted as asked by every router
// seen, and costs no request. A read-back lease within a few seconds of
// the request counts as granted as asked, so that the caller sees no
// spurious difference.
func (g *IGD) granted(ctx context.Context, m forward.Mapping, lease uint32) forward.Mapping {
	m.Lease = time.Duration(lease) * time.Second
	if lease > 0 && lease <= maxLeaseV2 {
		return m
	}
	got, err := g.specific(ctx, m.Key)
	switch {
	case err != nil:
		if max := g.service.MaxLease; max > 0 && (lease == 0 || lease > max) {
			m.Lease = time.Duration(max) * time.Second
		}
	case got.Lease > m.Lease || got.Lease < m.Lease-leaseSlack || (m.Lease == 0) != (got.Lease == 0):
		m.Lease = got.Lease
	}
	return m
}

// leaseSlack is how far a read-back lease may have run down and still
// count as the lease requested.
const leaseSlack = 5 * time.Second

// explain turns a failed AddPortMapping into an error that says why and
// what to do, wrapping the forward sentinel that applies and the
// *SOAPError. Only a 718 can turn out to be success; see explainConflict.
func (g *IGD) explain(ctx context.Context, m forward.Mapping, err error) (forward.Mapping, error) {
	if soapCode(err) == codeConflict {
		return g.explainConflict(ctx, m, err)
	}
	return forward.Mapping{}, g.explainOther(ctx, m, err)
}

// explainOther explains every AddPortMapping error but 718.
func (g *IGD) explainOther(ctx context.Context, m forward.Mapping, err error) error {
	switch soapCode(err) {
	case codeConflictOtherMech:
		// IGD:2: the port is taken by something outside UPnP (a static
		// forward, a service on the router); the device cannot name it.
		return fmt.Errorf("%w (gateway said %w)", &forward.ConflictError{Want: m}, err)
	case codeNotAuthorized:
		return g.notAuthorized(m, err)
	case codeActionFailed:
		return g.diagnoseActionFailed(ctx, err)
	}
	if hint := addHint(m, soapCode(err)); hint != "" {
		return fmt.Errorf("%s: %w", hint, err)
	}
	return err
}

// explainConflict handles 718 ConflictInMappingEntry. The code has two
// causes: another client holds the port (the spec's meaning), or — in
// miniupnpd and routers built on it — secure mode refusing a mapping whose
// internal client is not the requesting host. GetSpecificPortMappingEntry
// tells them apart.
func (g *IGD) explainConflict(ctx context.Context, m forward.Mapping, err error) (forward.Mapping, error) {
	holder, herr := g.specific(ctx, m.Key)
	switch {
	case herr == nil && !holder.SameTarget(m):
		return forward.Mapping{}, fmt.Errorf("%w (gateway said %w)", &forward.ConflictError{Want: m, Holder: holder}, err)
	case m.InternalHost != g.local:
		return forward.Mapping{}, g.notAuthorized(m, err)
	case herr == nil:
		// Quirk: some routers answer 718 to a refresh of an identical
		// mapping by the same host; it is in place, so report it as granted.
		return holder, nil
	case soapCode(herr) != codeNoSuchEntry:
		return forward.Mapping{}, fmt.Errorf("%w (gateway said %w)", &forward.ConflictError{Want: m}, err)
	}
	return forward.Mapping{}, g.notAuthorized(m, err)
}

// notAuthorized explains 606 Action not authorized (UDA 1.1 §3.2.2) and a
// secure-mode 718. Secure mode, on by default in routers, maps ports only to
// the host that asks; otherwise the router refuses this host, and the fix
// is in its settings, which depend on the router's family.
func (g *IGD) notAuthorized(m forward.Mapping, err error) error {
	if g.local.IsValid() && m.InternalHost != g.local {
		return fmt.Errorf("the gateway only maps ports to the host that asks for them (UPnP secure mode); run portfwd on %s, or use the iptables backend on the router: %w: %w",
			m.InternalHost, forward.ErrNotAuthorized, err)
	}
	router := "the gateway"
	if g.family != "" {
		router = "the " + g.family
	}
	return fmt.Errorf("%s refused %s to this host (%s): %s: %w: %w",
		router, m.Key, m.InternalHost, ownRefusedFix(g.family), forward.ErrNotAuthorized, err)
}

// addHint says what to do about the AddPortMapping errors that need no
// further questions to the gateway (WANIPConnection:1 §2.4.16,
// WANIPConnection:2 §2.5.16).
func addHint(m forward.Mapping, code int) string {
	switch code {
	case codeSamePortValues:
		return fmt.Sprintf("the gateway requires the internal port to equal the external port; set internal_port to %d", m.ExternalPort)
	case codeWildCardExtPort:
		return "the gateway does not accept external port 0 (any port); set external_port"
	case codeWildCardIntPort:
		return "the gateway does not accept internal port 0; set internal_port"
	case codeWildCardSrcIP:
		return "the gateway does not accept mappings from any remote host"
	case codeRemoteHostWildcard:
		return "the gateway only accepts mappings from any remote host"
	case codeExtPortWildcard:
		return "the gateway only maps a port of its own choosing, but portfwd needs a fixed external port; " + otherProtocols
	case codeNoPortMapsAvailable:
		return "the gateway's port-mapping table is full; remove unused mappings on the router"
	case codeInvalidArgs:
		return "the gateway rejected the request's arguments; check the internal host and ports"
	case codeInvalidAction:
		return "the gateway does not implement AddPortMapping; " + otherProtocols
	}
	return ""
}
