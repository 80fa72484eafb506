package pcp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// Options tunes OpenNATPMP and OpenPCP.
type Options struct {
	// Timeout bounds each request, retransmissions included, each on its
	// own; zero means the protocol's default (NAT-PMP 1 s, PCP 2 s). A
	// context deadline that comes sooner wins. Once the gateway has
	// answered, a request it leaves unanswered this long is a
	// *forward.SlowError. The CLI passes --timeout.
	Timeout time.Duration
	// Now is the clock for leases and epochs; nil means time.Now.
	Now func() time.Time
	// Gateway6 is where OpenPCP asks for IPv6 pinholes: the gateway's PCP
	// server on its IPv6 address (a link-local one with its zone, as
	// fe80::1%eth0). Zero means the next hop of this host's IPv6 default
	// route; with neither, the backend has no IPv6.
	Gateway6 netip.Addr

	// port and port6 are the servers' UDP ports on IPv4 and on IPv6; zero
	// means 5351. Tests move them.
	port, port6 uint16
}

// Backend is a forward.Backend speaking NAT-PMP (RFC 6886) or PCP (RFC
// 6887) to one gateway. Neither protocol can list mappings, so List
// answers from the records, and every answer's epoch is checked to notice
// a gateway that restarted and lost its mappings (RFC 6886 §3.6, RFC 6887
// §8.5). Its methods are safe for concurrent use: each holds the records'
// lock from its first request to its last write.
type Backend struct {
	m      mapper
	gw     netip.Addr
	server netip.AddrPort
	local  netip.Addr
	rec    *Records
	now    func() time.Time
	// timeout is each request's timeout, for the *forward.SlowError.
	timeout time.Duration

	warnings []string // guarded by rec.mu
	heard    bool     // guarded by rec.mu: the gateway has answered a request

	// six asks the gateway's PCP server on its IPv6 address for the IPv6
	// pinholes (backend6.go); nil without IPv6, and always for NAT-PMP.
	six *Backend
	// pinholes: this is the IPv6 side of a PCP backend (Backend.six).
	pinholes bool
	// translated is the external address each pinhole was said to be
	// granted on, when not its own (checkPinhole); guarded by rec.mu.
	translated map[forward.Key]netip.Addr
}

var (
	_ forward.Backend = (*Backend)(nil)
	_ forward.Locator = (*Backend)(nil)
	_ forward.Warner  = (*Backend)(nil)
)

// OpenNATPMP makes the NAT-PMP backend for gateway gw, recording its
// mappings in rec, and proves the gateway speaks NAT-PMP with an external
// address request (RFC 6886 §3.2). Silence, ICMP port unreachable or an
// answer in another version is an error wrapping forward.ErrNoGateway; any
// other answer, a refusal too, is an answer, and Open succeeds.
func OpenNATPMP(ctx context.Context, gw netip.Addr, rec *Records, opts Options) (*Backend, error) {
	if gw = gw.Unmap(); !gw.Is4() {
		return nil, fmt.Errorf("NAT-PMP gateway %v: NAT-PMP speaks IPv4 only (RFC 6886 §1); use backend pcp or upnp", gw)
	}
	return open(ctx, gw, rec, opts, newNATPMPMapper)
}

// OpenPCP makes the PCP backend for gateway gw, recording its mappings in
// rec, and proves the gateway speaks PCP with an ANNOUNCE (RFC 6887
// §14.1). Silence, ICMP port unreachable or an answer in another version
// (NAT-PMP's, §9) is an error wrapping forward.ErrNoGateway; any other
// answer, a refusal too, is an answer, and Open succeeds.
//
// IPv6 pinholes are asked of the gateway's PCP server on its IPv6
// address, opts.Gateway6 or the IPv6 default route's next hop, only once
// one is added or recorded (backend6.go): an IPv4-only run costs nothing
// more.
func OpenPCP(ctx context.Context, gw netip.Addr, rec *Records, opts Options) (*Backend, error) {
	if gw = gw.Unmap(); gw.Is6() {
		return nil, fmt.Errorf("PCP gateway %v: give the gateway's IPv4 address, which IPv4 forwards are asked of; its IPv6 address is for pinholes (Options.Gateway6)", gw)
	}
	b, err := open(ctx, gw, rec, opts, newPCPMapper)
	if err != nil {
		return nil, err
	}
	b.six = b.openIPv6(opts)
	return b, nil
}

// open makes the backend with the mapper newMapper makes, and announces.
func open(ctx context.Context, gw netip.Addr, rec *Records, opts Options,
	newMapper func(netip.AddrPort, netip.Addr, time.Duration) mapper) (*Backend, error) {
	if !gw.IsValid() {
		return nil, errors.New("NAT-PMP and PCP need the gateway's address")
	}
	if rec == nil {
		return nil, errors.New("NAT-PMP and PCP need records: the protocols cannot list mappings")
	}
	server := netip.AddrPortFrom(gw, cmp.Or(opts.port, serverPort))
	local, err := forward.SourceAddr(server)
	if err != nil {
		return nil, fmt.Errorf("finding this host's address toward %v: %w", gw, err)
	}
	b := &Backend{m: newMapper(server, local, opts.Timeout), gw: gw, server: server, local: local,
		rec: rec, now: opts.Now}
	b.timeout = cmp.Or(opts.Timeout, b.m.facts().timeout)
	if b.now == nil {
		b.now = time.Now
	}
	b.lock()
	defer b.unlock()
	_, err = b.announce(ctx, "asking whether the gateway speaks "+b.m.facts().title)
	if err = b.saved(err); forward.IsSilence(err) {
		return nil, err
	}
	return b, nil
}

// lock and unlock serialise the backend's calls on its records, so that
// backends sharing one Records never interleave.
func (b *Backend) lock()   { b.rec.mu.Lock() }
func (b *Backend) unlock() { b.rec.mu.Unlock() }

// LocalAddr implements forward.Locator: this host's address toward the
// gateway, the client IP of every request. NAT-PMP maps only to it (RFC
// 6886 §3.3); PCP maps to others with THIRD_PARTY (RFC 6887 §13.1).
func (b *Backend) LocalAddr() netip.Addr { return b.local }

// Warnings implements forward.Warner: what happened since the last call
// that the user should know, in order — a gateway restart that made
// portfwd forget its mappings.
func (b *Backend) Warnings() []string {
	b.lock()
	defer b.unlock()
	w := b.warnings
	b.warnings = nil
	if b.six != nil {
		w = append(w, b.six.warnings...)
		b.six.warnings = nil
	}
	return w
}

// Properties implements forward.Backend.
func (b *Backend) Properties() forward.Properties {
	f := b.m.facts()
	return forward.Properties{Name: f.name, Gateway: f.name + "://" + b.server.String(),
		Protocols: f.protocols, ListsFromState: true, ThirdParty: f.thirdParty, IPv6: b.six != nil}
}

// record is this gateway's part of the records.
func (b *Backend) record() *gatewayRecord { return b.rec.gateway(b.m.facts().name, b.gw) }

// List implements forward.Backend from the records, since neither
// protocol has a request that lists mappings. It announces first to read
// the gateway's epoch: after a restart the records are dropped and nothing
// is listed, so the planner re-creates every mapping. A gateway that does
// not answer fails List: the records alone could not tell a restart.
// The recorded IPv6 pinholes are listed too (list6).
func (b *Backend) List(ctx context.Context) ([]forward.Mapping, error) {
	b.lock()
	defer b.unlock()
	_, err := b.announce(ctx, "listing mappings")
	if err != nil {
		return nil, b.saved(err)
	}
	live := append(b.record().live(b.now()), b.list6(ctx)...)
	if err := b.saved(nil); err != nil {
		return nil, err
	}
	return live, nil
}

// ExternalAddr implements forward.Backend. NAT-PMP asks (RFC 6886 §3.2).
// PCP reports the external address only in the answer to a MAP (RFC 6887
// §11.1), and a probe mapping would change the gateway, so this is the
// address the last mapping's answer reported, after an ANNOUNCE that shows
// the gateway has not restarted since (a new external address resets the
// epoch too, §8.5).
func (b *Backend) ExternalAddr(ctx context.Context) (netip.Addr, error) {
	b.lock()
	defer b.unlock()
	const doing = "asking the external address"
	a, err := b.announce(ctx, doing)
	if err = b.saved(err); err != nil {
		return netip.Addr{}, err
	}
	if a.external.IsValid() {
		return a.external, nil
	}
	if addr, err := netip.ParseAddr(b.record().External); err == nil {
		return addr, nil
	}
	return netip.Addr{}, &gatewayError{what: doing + ": unknown until a mapping exists",
		advice: "PCP reports the gateway's external address only in the answer to a mapping request (RFC 6887 §11.1)"}
}

// announce sends the protocol's announce and notes its epoch.
func (b *Backend) announce(ctx context.Context, doing string) (answer, error) {
	return b.call(ctx, doing, func() (answer, error) { return b.m.announce(ctx) })
}

// call runs one request, notes the epoch of its answer, and explains its
// failure with what portfwd was doing.
func (b *Backend) call(ctx context.Context, doing string, request func() (answer, error)) (answer, error) {
	a, err := request()
	b.observe(a)
	if err != nil {
		return a, fmt.Errorf("%s: %w", doing, b.explain(ctx, err))
	}
	return a, nil
}

// change is call for a request that creates or deletes a mapping: the
// work a router can be slow at (miniupnpd, which serves NAT-PMP and PCP
// too, takes longer for each as its table grows; LAB.md). Once the gateway
// has answered, such a request it leaves unanswered within the timeout is
// a *forward.SlowError, not a gateway that does not speak the protocol.
func (b *Backend) change(ctx context.Context, doing string, request func() (answer, error)) (answer, error) {
	return b.call(ctx, doing, func() (answer, error) {
		heard := b.heard
		a, err := request()
		if heard && !expired(ctx) && errors.Is(err, forward.ErrNoGateway) && errors.Is(err, context.DeadlineExceeded) {
			err = &forward.SlowError{Request: "the " + b.m.facts().title + " mapping request", After: b.timeout}
		}
		return a, err
	})
}

// observe checks the epoch of an answer with the protocol's rule: when it
// shows the gateway lost its state, every record of it is dropped — those
// mappings are gone too — and so is the external address, which may be
// what changed. The first epoch seen loses nothing. Records whose lifetime
// ran out go too: the gateway has let those mappings lapse, and a client
// need not delete them (RFC 6886 §3.1).
//
// The epoch seen becomes the baseline of the next check, but it is worth
// writing (g.changed) only where it matters: after a restart (or every
// later run would warn of it again); as the first baseline of records
// that hold something; and once the baseline it was checked against is
// older than baselineAge. Otherwise a run that changes nothing writes nothing: both
// RFC rules hold against an older baseline (the gateway's clock and ours
// are compared over a longer time), and every write of the records, an
// add or a renewal at half the lease, takes the latest epoch along.
func (b *Backend) observe(a answer) {
	if !a.answered {
		return
	}
	b.heard = true
	g, now := b.record(), b.now()
	if !g.EpochAt.IsZero() && b.m.restarted(g.Epoch, g.EpochAt, a.epoch, now) {
		b.warnings = append(b.warnings, b.restartWarning(g.Epoch, a.epoch))
		g.Entries, g.External, g.changed = nil, "", true
	}
	if g.holds() && (g.EpochAt.IsZero() || now.Sub(g.EpochAt) > baselineAge) {
		g.changed = true
	}
	g.Epoch, g.EpochAt = a.epoch, now
	g.prune(now)
}

// baselineAge is how old the epoch baseline of records that hold mappings
// may grow before a run that changes nothing else writes a fresh one. The
// restart rules grow more forgiving with the baseline's age (NAT-PMP's by
// an eighth of it, RFC 6886 §3.6; PCP's by a sixteenth, RFC 6887 §8.5), so
// a day keeps that under three hours, at one write a day for a daemon
// that checks every minute.
const baselineAge = 24 * time.Hour

// saved writes the records when the call changed them, so that what the
// gateway said — a grant, a restart — is on disk before the call returns,
// and joins a failure to err.
func (b *Backend) saved(err error) error {
	if serr := b.rec.saveChanged(); serr != nil {
		return errors.Join(err, fmt.Errorf("recording %s mappings: %w", b.m.facts().title, serr))
	}
	return err
}

// explain finishes a failure whose meaning depends on the gateway's WAN
// side (NAT-PMP's network failure, PCP's NETWORK_FAILURE): the external
// address tells a gateway behind carrier-grade NAT from one whose WAN is
// down. Both are forward.ErrDoubleNAT, as UPnP's "0.0.0.0" is: a diagnosis
// that also covers a WAN that is down.
func (b *Backend) explain(ctx context.Context, err error) error {
	var ge *gatewayError
	if !errors.As(err, &ge) || !ge.wan {
		return err
	}
	d := &gatewayError{what: ge.what, cause: append(ge.cause[:len(ge.cause):len(ge.cause)], forward.ErrDoubleNAT)}
	wan := b.knownWAN(ctx)
	if wan.IsValid() && !forward.IsPublic(wan) {
		d.advice = fmt.Sprintf("the gateway's WAN address %v is private or shared, so it is behind another NAT (carrier-grade NAT) and nothing can be forwarded to it from the internet; ask the ISP for a public IPv4 address", wan)
		return d
	}
	d.advice = "the gateway has no working WAN connection (no DHCP lease or external address yet); if the router's own WAN address is private or in 100.64.0.0/10, it is behind another NAT (carrier-grade NAT) and nothing can be forwarded to it: ask the ISP for a public IPv4 address"
	return d
}

// knownWAN is the gateway's external address as an announce reports it
// (NAT-PMP), else as the records have it (PCP), else the zero Addr.
func (b *Backend) knownWAN(ctx context.Context) netip.Addr {
	a, err := b.m.announce(ctx)
	b.observe(a)
	if err == nil && a.external.IsValid() {
		return a.external
	}
	addr, _ := netip.ParseAddr(b.record().External)
	return addr
}

// Add implements forward.Backend with a mapping request (RFC 6886 §3.3,
// RFC 6887 §11). A permanent lease is asked as a week (leaseToAsk); the
// grant is recorded before Add returns. A gateway that grants another
// external port than the one asked has given the port to someone else:
// for external_port: any the grant is kept, recorded and returned under
// the port granted; otherwise it is deleted again and Add fails as a
// conflict. An IPv6 pinhole is asked of the IPv6 side (backend6.go).
func (b *Backend) Add(ctx context.Context, m forward.Mapping) (forward.Mapping, error) {
	b.lock()
	defer b.unlock()
	s := b.side(m.Key)
	if s == nil {
		return forward.Mapping{}, b.noIPv6(m.Key)
	}
	granted, err := s.add(ctx, "adding mapping "+m.Key.String(), m)
	if err = b.saved(err); err != nil {
		return forward.Mapping{}, err
	}
	return granted, nil
}

// add is Add with the lock held; the caller saves the records.
func (b *Backend) add(ctx context.Context, doing string, m forward.Mapping) (forward.Mapping, error) {
	e := b.entryFor(m)
	a, err := b.change(ctx, doing, func() (answer, error) { return b.m.mapPort(ctx, &e, leaseToAsk(m.Lease)) })
	if err != nil {
		return forward.Mapping{}, err
	}
	if err := grantError(doing, a); err != nil {
		return forward.Mapping{}, err
	}
	if a.port != m.ExternalPort {
		if sib, ok := b.holder(m, a); ok {
			return forward.Mapping{}, siblingConflict(doing, m, sib, a.port)
		}
		if !m.AnyExternal {
			return forward.Mapping{}, b.movedPort(ctx, doing, e, a.port)
		}
		b.record().drop(m.Key) // recorded, and so listed, under the port granted
		e.ExternalPort = a.port
	}
	b.remember(e, a)
	b.checkPinhole(m, a)
	granted := e.Mapping
	granted.Lease = a.lifetime
	return granted, nil
}

// entryFor is the record-to-be of m: it keeps the nonce of the record on
// m's key when that is this very mapping (same internal side), so that
// PCP renews it (RFC 6887 §11.2) rather than ask for a second one.
func (b *Backend) entryFor(m forward.Mapping) entry {
	e := entry{Mapping: m}
	if r, ok := b.record().find(m.Key); ok && r.InternalHost.Unmap() == m.InternalHost.Unmap() && r.InternalPort == m.InternalPort {
		e.Nonce = r.Nonce
	}
	return e
}

// grantError refuses a success that grants nothing: no port, or no
// lifetime, which would read as a permanent lease.
func grantError(doing string, a answer) error {
	switch {
	case a.lifetime <= 0:
		return fmt.Errorf("%s: the gateway answered success but granted no lifetime; try backend upnp", doing)
	case a.port == 0:
		return fmt.Errorf("%s: the gateway answered success but granted no external port; try backend upnp", doing)
	}
	return nil
}

// remember records e as granted in a, and the external address a mapping
// answer reported (PCP's assigned external address, RFC 6887 §11.1).
func (b *Backend) remember(e entry, a answer) {
	g := b.record()
	if a.external.IsValid() && !a.external.IsUnspecified() && e.Family == forward.IPv4 {
		g.External = a.external.String()
	}
	e.GrantedPort, e.Expires = a.port, b.now().Add(a.lifetime)
	g.put(e)
}

// holder is the record of another rule whose mapping the gateway answered
// with: a gateway that keys mappings by internal port (NAT-PMP, RFC 6886
// §3.3) refreshes that one rather than make a second. Its record takes
// the lifetime the gateway just granted.
func (b *Backend) holder(m forward.Mapping, a answer) (entry, bool) {
	for _, s := range b.m.siblings(b.record().Entries, m) {
		if s.GrantedPort == a.port {
			s.Expires = b.now().Add(a.lifetime)
			b.record().put(s)
			return s, true
		}
	}
	return entry{}, false
}

// siblingConflict is the error for m, answered with sib's mapping.
func siblingConflict(doing string, m forward.Mapping, sib entry, port uint16) error {
	return &gatewayError{what: fmt.Sprintf("%s: the gateway answered with the mapping of %s (external port %d): it keeps one mapping per internal port; "+
		"give the rules different internal ports, or use backend upnp", doing, sib.Key, port),
		cause: []error{&forward.ConflictError{Want: m, Holder: sib.Mapping}}}
}

// movedPort handles a grant of another external port than the one asked,
// which a gateway makes when the port is taken (RFC 6886 §3.3, RFC 6887
// §11.3). That is not the rule the user wrote, so the grant is deleted
// again (for PCP with the same nonce) and the add fails as a conflict with
// a holder the gateway does not name. A renewal that moved leaves nothing
// of portfwd's under the key either.
func (b *Backend) movedPort(ctx context.Context, doing string, e entry, got uint16) error {
	msg := fmt.Sprintf("%s: the gateway would only forward %s as external port %d (the port is taken, perhaps by another device); choose another external_port",
		doing, e.Key, got)
	moved := e
	moved.GrantedPort = got
	if _, err := b.change(ctx, "deleting the mapping it granted instead", func() (answer, error) { return b.m.unmap(ctx, moved) }); err != nil {
		msg += fmt.Sprintf(" (and %v: remove external port %d on the router)", err, got)
	}
	b.record().drop(e.Key)
	if err := b.restoreSiblings(ctx, moved); err != nil {
		msg += fmt.Sprintf(" (and %v)", err)
	}
	return &gatewayError{what: msg, cause: []error{&forward.ConflictError{Want: e.Mapping}}}
}

// Delete implements forward.Backend with a request of lifetime 0 (RFC 6886
// §3.4, RFC 6887 §15) for the recorded mapping. Without a record portfwd
// does not own the mapping, and nothing is sent. Mappings the gateway
// deletes along with it (NAT-PMP's siblings) are made again. An IPv6
// pinhole is deleted by the IPv6 side; without one nothing is recorded.
func (b *Backend) Delete(ctx context.Context, m forward.Mapping) error {
	b.lock()
	defer b.unlock()
	s := b.side(m.Key)
	if s == nil {
		return ctx.Err()
	}
	return b.saved(s.delete(ctx, "deleting mapping "+m.Key.String(), m.Key))
}

// delete is Delete with the lock held; the caller saves the records.
func (b *Backend) delete(ctx context.Context, doing string, k forward.Key) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", doing, err) // even with nothing to send
	}
	e, ok := b.record().find(k)
	if !ok {
		return nil
	}
	_, err := b.change(ctx, doing, func() (answer, error) { return b.m.unmap(ctx, e) })
	if err != nil && !errors.Is(err, errLapse) {
		return err
	}
	b.record().drop(k)
	return errors.Join(err, b.restoreSiblings(ctx, e))
}

// restoreSiblings maps again the records the gateway deleted along with
// gone.
func (b *Backend) restoreSiblings(ctx context.Context, gone entry) error {
	var errs []error
	for _, s := range b.m.siblings(b.record().Entries, gone.Mapping) {
		errs = append(errs, b.restore(ctx, s))
	}
	return errors.Join(errs...)
}

// restore maps e again as it was requested and records the grant; a
// record that cannot be restored where it was is dropped, so the next plan
// re-creates it.
func (b *Backend) restore(ctx context.Context, e entry) error {
	doing := fmt.Sprintf("restoring mapping %s (the gateway deleted it with another mapping of internal port %d)", e.Key, e.InternalPort)
	a, err := b.change(ctx, doing, func() (answer, error) { return b.m.mapPort(ctx, &e, leaseToAsk(e.Lease)) })
	if err == nil {
		err = grantError(doing, a)
	}
	if err == nil && a.port != e.ExternalPort {
		err = fmt.Errorf("%s: the gateway granted external port %d instead; remove it on the router", doing, a.port)
	}
	if err != nil {
		b.record().drop(e.Key)
		return err
	}
	b.remember(e, a)
	return nil
}
