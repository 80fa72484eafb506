package upnp

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// pcpProtocolName names PCP in the state file and in Properties.
const pcpProtocolName = "pcp"

// DefaultPCPTimeout bounds one PCP request, retransmissions included
// (RFC 6887 §8.1.1 never gives up; a gateway on the LAN answers in
// milliseconds or not at all).
const DefaultPCPTimeout = pcpDefaultTimeout

// pcpPermanent is the lifetime asked for a permanent mapping: a lifetime of
// 0 deletes (RFC 6887 §15), so portfwd asks for the week an IGD:2 grants in
// place of "forever" and the planner renews it (forward.PermanentLeaseCap).
const pcpPermanent = forward.PermanentLeaseCap

// PCPOptions tunes NewPCP.
type PCPOptions struct {
	// Timeout bounds each request; zero means DefaultPCPTimeout. A context
	// deadline that comes sooner wins.
	Timeout time.Duration
	// Now is the clock for leases and epochs; nil means time.Now.
	Now func() time.Time
}

// pcpClient is the part of *PCPClient the backend uses, so tests can fake
// the gateway at the edge.
type pcpClient interface {
	Announce(ctx context.Context) (epoch uint32, err error)
	Map(ctx context.Context, r MapRequest) (MapResponse, error)
}

// PCP is a forward.Backend speaking PCP (RFC 6887) to one gateway. PCP
// cannot enumerate mappings, so List answers from the state file, where
// each mapping's nonce is kept to renew and delete it (§11.2, §15); each
// response's epoch is checked to notice a gateway that lost its mappings
// (§8.5).
type PCP struct {
	gw      netip.Addr
	local   netip.Addr
	state   *forward.State
	timeout time.Duration
	now     func() time.Time
	client  pcpClient

	mu       sync.Mutex
	warnings []string
}

var _ forward.Backend = (*PCP)(nil)

// NewPCP returns the PCP backend for gateway gw, recording its mappings in
// state. It sends nothing; the first request shows whether the gateway
// speaks PCP at all.
func NewPCP(gw netip.Addr, state *forward.State, opts PCPOptions) (*PCP, error) {
	gw = gw.Unmap()
	if !gw.IsValid() {
		return nil, errors.New("PCP needs the gateway's address")
	}
	if state == nil {
		return nil, errors.New("PCP needs a state file: the protocol cannot list mappings")
	}
	c, err := NewPCPClient(gw)
	if err != nil {
		return nil, err
	}
	p := &PCP{gw: gw, local: c.Local, state: state, timeout: opts.Timeout, now: opts.Now, client: c}
	if p.timeout <= 0 {
		p.timeout = DefaultPCPTimeout
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p, nil
}

// LocalAddr is this host's address toward the gateway: the client IP of
// every request (RFC 6887 §7.1). Mappings to any other host need the
// THIRD_PARTY option (§13.1).
func (p *PCP) LocalAddr() netip.Addr { return p.local }

// Warnings are what happened that the user should know, in order: epoch
// resets that made portfwd forget its mappings.
func (p *PCP) Warnings() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.warnings...)
}

// Properties implements forward.Backend. ThirdParty is true because PCP
// has the THIRD_PARTY option; whether the gateway allows it is only known
// when it refuses.
func (p *PCP) Properties() forward.Properties {
	return forward.Properties{
		Name:           pcpProtocolName,
		Gateway:        "pcp://" + netip.AddrPortFrom(p.gw, pcpPort).String(),
		Protocols:      []string{"PCP (RFC 6887)"},
		ListsFromState: true,
		ThirdParty:     forward.ThirdPartyYes,
	}
}

// record is this gateway's part of the state, looked up on each use:
// State.Gateway may move the records when another gateway is added.
func (p *PCP) record() *forward.GatewayState {
	return p.state.Gateway(pcpProtocolName, p.gw)
}

// List implements forward.Backend from the state file, since PCP has no
// request that lists mappings. An ANNOUNCE (§14.1) first reads the epoch:
// after a reboot the records are dropped and nothing is returned, so the
// planner re-creates every mapping.
func (p *PCP) List(ctx context.Context) ([]forward.Mapping, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.announce(ctx, "listing mappings"); err != nil {
		return nil, err
	}
	return p.record().Live(p.now()), nil
}

// ExternalAddr implements forward.Backend. PCP reports the external
// address only in the answer to a MAP (§11.1), and a probe mapping would
// change the gateway, so this is the address the last mapping's answer
// reported, after an ANNOUNCE that shows the gateway has not restarted
// since (a new external address resets the epoch too, §8.5).
func (p *PCP) ExternalAddr(ctx context.Context) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	const doing = "asking the external address"
	if err := p.announce(ctx, doing); err != nil {
		return netip.Addr{}, err
	}
	a, err := netip.ParseAddr(p.record().External)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s: unknown until a mapping exists: PCP reports the gateway's external address only in the answer to a mapping request (RFC 6887 §11.1)", doing)
	}
	return a, nil
}

// announce sends ANNOUNCE and notes the epoch it carries.
func (p *PCP) announce(ctx context.Context, doing string) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	epoch, err := p.client.Announce(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	if err := p.observe(epoch); err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	return nil
}

// observe checks an epoch the gateway reported (RFC 6887 §8.5): when it
// shows the gateway lost its state, every record of it is dropped, since
// those mappings are gone too, and so is the external address, which may
// be what changed. The state is saved either way, so the next run compares
// against this observation.
func (p *PCP) observe(epoch uint32) error {
	if w := p.record().Restarted("PCP", epoch, p.now()); w != "" {
		p.warnings = append(p.warnings, w)
	}
	return p.save()
}

func (p *PCP) save() error {
	if err := p.state.Save(); err != nil {
		return fmt.Errorf("recording PCP mappings: %w", err)
	}
	return nil
}

// mapRequest sends one MAP (lifetime 0 deletes, §15) and notes the epoch
// of the answer, an error answer's too when it is PCP version 2.
func (p *PCP) mapRequest(ctx context.Context, doing string, r MapRequest) (MapResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	res, err := p.client.Map(ctx, r)
	var perr *PCPError
	if err == nil || (errors.As(err, &perr) && perr.Version == pcpVersion) {
		if serr := p.observe(res.Epoch); serr != nil {
			return MapResponse{}, fmt.Errorf("%s: %w", doing, errors.Join(err, serr))
		}
	}
	if err != nil {
		return MapResponse{}, fmt.Errorf("%s: %w", doing, err)
	}
	return res, nil
}

// thirdParty is the THIRD_PARTY address (§13.1) a mapping to host needs:
// zero when host is this one.
func (p *PCP) thirdParty(host netip.Addr) netip.Addr {
	if host = host.Unmap(); host == p.local {
		return netip.Addr{}
	}
	return host
}

// pcpLifetimeFor is the lifetime to request for a lease, never zero: zero
// would delete the mapping (RFC 6887 §15).
func pcpLifetimeFor(lease time.Duration) time.Duration {
	if lease <= 0 {
		return pcpPermanent
	}
	return lease
}

// encodeNonce and decodeNonce keep a nonce in Recorded.Nonce as hex.
func encodeNonce(n [12]byte) string { return hex.EncodeToString(n[:]) }

func decodeNonce(s string) ([12]byte, bool) {
	var n [12]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(n) {
		return n, false
	}
	copy(n[:], b)
	return n, true
}

// Add implements forward.Backend with a MAP request (RFC 6887 §11). A
// mapping portfwd recorded is renewed with its nonce (§11.2); a new one
// gets a fresh random nonce. A mapping to another host carries the
// THIRD_PARTY option (§13.1); a gateway that refuses it answers
// NOT_AUTHORIZED, or UNSUPP_OPTION (miniupnpd without
// pcp_allow_thirdparty), which is forward.ErrNotAuthorized either way. The
// grant is recorded in the state file before Add returns.
func (p *PCP) Add(ctx context.Context, m forward.Mapping) (forward.Mapping, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	doing := "adding mapping " + m.Key.String()
	req, err := p.mapFor(m)
	if err != nil {
		return forward.Mapping{}, fmt.Errorf("%s: %w", doing, err)
	}
	res, err := p.mapRequest(ctx, doing, req)
	if err != nil {
		return forward.Mapping{}, err
	}
	if res.ExternalPort != m.ExternalPort {
		if !m.AnyExternal {
			return forward.Mapping{}, p.movedPort(ctx, m, req, res.ExternalPort)
		}
		// external_port: any takes the port granted; the mapping is
		// recorded, and so listed, under it.
		p.record().Drop(m.Key)
		m.ExternalPort = res.ExternalPort
	}
	if res.Lifetime <= 0 {
		return forward.Mapping{}, fmt.Errorf("%s: the gateway answered success but granted no lifetime; try backend upnp", doing)
	}
	granted := m
	granted.Lease = res.Lifetime
	p.remember(m, res, req.Nonce)
	if err := p.save(); err != nil {
		return forward.Mapping{}, fmt.Errorf("%s: %w", doing, err)
	}
	return granted, nil
}

// mapFor is the MAP request for m: the recorded nonce when portfwd made
// this very mapping (same internal side), else a new one; the suggested
// external port; no preference for the external address (§11.1).
func (p *PCP) mapFor(m forward.Mapping) (MapRequest, error) {
	if m.ExternalPort == 0 {
		return MapRequest{}, errors.New("PCP needs an external port to suggest")
	}
	nonce := NewNonce()
	if r, ok := p.record().Find(m.Key); ok && r.InternalHost.Unmap() == m.InternalHost.Unmap() && r.InternalPort == m.InternalPort {
		if n, ok := decodeNonce(r.Nonce); ok {
			nonce = n
		}
	}
	return MapRequest{Nonce: nonce, Protocol: m.Protocol, InternalPort: m.InternalPort,
		SuggestedPort: m.ExternalPort, Lifetime: pcpLifetimeFor(m.Lease), ThirdParty: p.thirdParty(m.InternalHost)}, nil
}

// remember records the grant of m and the external address it reported.
func (p *PCP) remember(m forward.Mapping, res MapResponse, nonce [12]byte) {
	g := p.record()
	if res.ExternalIP.IsValid() && !res.ExternalIP.IsUnspecified() {
		g.External = res.ExternalIP.String()
	}
	g.Put(forward.Recorded{Mapping: m, GrantedPort: res.ExternalPort,
		Expires: p.now().Add(res.Lifetime), Nonce: encodeNonce(nonce)})
}

// movedPort handles a gateway that granted another external port than the
// one suggested, which it may do when the port is taken (§11.3). Unless
// the rule says external_port: any, that is not the rule the user wrote, so the mapping is deleted again with the
// same nonce (§15) and the add fails as a conflict with an unknown holder.
func (p *PCP) movedPort(ctx context.Context, m forward.Mapping, req MapRequest, got uint16) error {
	msg := fmt.Sprintf("adding mapping %s: the gateway would only forward %s as external port %d (the port is taken, perhaps by another device); choose another external_port",
		m.Key, m.Key, got)
	del := req
	del.SuggestedPort, del.Lifetime = got, 0
	if _, err := p.mapRequest(ctx, "deleting the mapping it granted instead", del); err != nil {
		msg += fmt.Sprintf(" (and %v: remove external port %d on the router)", err, got)
	}
	// A renewal that moved leaves nothing under the recorded nonce either.
	p.record().Drop(m.Key)
	if err := p.save(); err != nil {
		msg += fmt.Sprintf(" (and %v)", err)
	}
	// natpmpError is the shared "message for the user, cause to branch on".
	return &natpmpError{err: &forward.ConflictError{Want: m}, msg: msg}
}

// Delete implements forward.Backend: a MAP with lifetime 0 and the
// recorded nonce (RFC 6887 §15). Without a record portfwd does not own the
// mapping and sends nothing. An absent mapping is no error (§15; the
// client reads miniupnpd's NO_RESOURCES so).
func (p *PCP) Delete(ctx context.Context, m forward.Mapping) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	doing := "deleting mapping " + m.Key.String()
	r, ok := p.record().Find(m.Key)
	if !ok {
		return nil
	}
	nonce, ok := decodeNonce(r.Nonce)
	if !ok {
		p.record().Drop(m.Key)
		return errors.Join(fmt.Errorf("%s: the state file holds no nonce for it, and PCP deletes only with the mapping's nonce (RFC 6887 §15); it lapses at %s, or remove it on the router",
			doing, r.Expires.Format(time.RFC3339)), p.save())
	}
	req := MapRequest{Nonce: nonce, Protocol: r.Protocol, InternalPort: r.InternalPort,
		SuggestedPort: r.GrantedPort, ThirdParty: p.thirdParty(r.InternalHost)}
	if _, err := p.mapRequest(ctx, doing, req); err != nil {
		return err
	}
	p.record().Drop(m.Key)
	return p.save()
}
