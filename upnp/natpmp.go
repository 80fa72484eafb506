package upnp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	natpmp "github.com/jackpal/go-nat-pmp"

	"github.com/portfwd/portfwd/forward"
)

// natpmpPort is where a NAT-PMP server listens (RFC 6886 §3.1).
const natpmpPort = 5351

// natpmpProtocol names NAT-PMP in the state file and in Properties.
const natpmpProtocol = "natpmp"

// DefaultNATPMPTimeout bounds one NAT-PMP request, retransmissions
// included. The library's own schedule (RFC 6886 §3.1: 250 ms doubling,
// nine tries) takes about two minutes; a gateway on the LAN answers in
// milliseconds or not at all.
const DefaultNATPMPTimeout = time.Second

// natpmpPermanent is the lifetime asked for a permanent mapping. A zero
// lifetime is a deletion in NAT-PMP (RFC 6886 §3.3, §3.4), so portfwd asks
// for the week an IGD:2 grants in place of "forever" and the planner renews
// it (forward.PermanentLeaseCap).
const natpmpPermanent = forward.PermanentLeaseCap

// NATPMPOptions tunes NewNATPMP.
type NATPMPOptions struct {
	// Timeout bounds each request; zero means DefaultNATPMPTimeout. A
	// context deadline that comes sooner wins.
	Timeout time.Duration
	// Now is the clock for leases and epochs; nil means time.Now.
	Now func() time.Time
}

// natpmpClient is the part of github.com/jackpal/go-nat-pmp the backend
// uses, so tests can fake the gateway at the edge.
type natpmpClient interface {
	GetExternalAddress() (*natpmp.GetExternalAddressResult, error)
	AddPortMapping(protocol string, internalPort, requestedExternalPort, lifetime int) (*natpmp.AddPortMappingResult, error)
}

// NATPMP is a forward.Backend speaking NAT-PMP (RFC 6886) to one gateway.
// NAT-PMP cannot enumerate mappings, so List answers from the state file;
// each response's epoch is checked to notice a gateway that lost its
// mappings (RFC 6886 §3.6). Requests are not interrupted by a cancelled
// context, but each is bounded by the timeout.
type NATPMP struct {
	gw      netip.Addr
	local   netip.Addr
	state   *forward.State
	timeout time.Duration
	now     func() time.Time
	// dial returns a client whose requests give up after timeout.
	dial func(timeout time.Duration) natpmpClient

	mu       sync.Mutex
	warnings []string
}

var _ forward.Backend = (*NATPMP)(nil)

// NewNATPMP returns the NAT-PMP backend for gateway gw, recording its
// mappings in state. It sends nothing; the first request shows whether the
// gateway speaks NAT-PMP at all.
func NewNATPMP(gw netip.Addr, state *forward.State, opts NATPMPOptions) (*NATPMP, error) {
	gw = gw.Unmap()
	if !gw.Is4() {
		return nil, fmt.Errorf("NAT-PMP gateway %v: NAT-PMP speaks IPv4 only (RFC 6886 §1); use backend pcp or upnp", gw)
	}
	if state == nil {
		return nil, errors.New("NAT-PMP needs a state file: the protocol cannot list mappings")
	}
	local, err := localAddrTo(netip.AddrPortFrom(gw, natpmpPort))
	if err != nil {
		return nil, fmt.Errorf("finding this host's address toward %v: %w", gw, err)
	}
	n := &NATPMP{gw: gw, local: local, state: state, timeout: opts.Timeout, now: opts.Now}
	if n.timeout <= 0 {
		n.timeout = DefaultNATPMPTimeout
	}
	if n.now == nil {
		n.now = time.Now
	}
	n.dial = func(timeout time.Duration) natpmpClient {
		return natpmp.NewClientWithTimeout(gw.AsSlice(), timeout)
	}
	return n, nil
}

// localAddrTo is the source address the kernel picks toward dst:
// connecting a UDP socket chooses the route and sends nothing.
func localAddrTo(dst netip.AddrPort) (netip.Addr, error) {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		return netip.Addr{}, err
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// LocalAddr is this host's address toward the gateway: the only internal
// host NAT-PMP maps ports to (RFC 6886 §3.3).
func (n *NATPMP) LocalAddr() netip.Addr { return n.local }

// Warnings are what happened that the user should know, in order: epoch
// resets that made portfwd forget its mappings.
func (n *NATPMP) Warnings() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.warnings...)
}

// Properties implements forward.Backend.
func (n *NATPMP) Properties() forward.Properties {
	return forward.Properties{
		Name:           natpmpProtocol,
		Gateway:        "natpmp://" + netip.AddrPortFrom(n.gw, natpmpPort).String(),
		Protocols:      []string{"NAT-PMP (RFC 6886)"},
		ListsFromState: true,
	}
}

// record is this gateway's part of the state. It is looked up on each use:
// State.Gateway may move the records when another gateway is added.
func (n *NATPMP) record() *forward.GatewayState {
	return n.state.Gateway(natpmpProtocol, n.gw)
}

// List implements forward.Backend from the state file, since NAT-PMP has
// no request that lists mappings. It asks for the external address first
// only to read the gateway's epoch: after a reboot the records are dropped
// and nothing is returned, so the planner re-creates every mapping.
func (n *NATPMP) List(ctx context.Context) ([]forward.Mapping, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, err := n.externalAddr(ctx, "listing mappings"); err != nil {
		return nil, err
	}
	return n.record().Live(n.now()), nil
}

// ExternalAddr implements forward.Backend with GetExternalAddress (RFC 6886
// §3.2), noting the epoch it carries.
func (n *NATPMP) ExternalAddr(ctx context.Context) (netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.externalAddr(ctx, "asking the external address")
}

func (n *NATPMP) externalAddr(ctx context.Context, doing string) (netip.Addr, error) {
	c, err := n.client(ctx)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s: %w", doing, err)
	}
	res, err := c.GetExternalAddress()
	if err != nil {
		return netip.Addr{}, n.explain(ctx, doing, err, false)
	}
	if err := n.observe(res.SecondsSinceStartOfEpoc); err != nil {
		return netip.Addr{}, err
	}
	return netip.AddrFrom4(res.ExternalIPAddress), nil
}

// client is a library client whose retransmissions stop at the timeout or
// at ctx's deadline, whichever comes first. The library treats a zero
// timeout as its two-minute default, so an expired ctx never reaches it.
func (n *NATPMP) client(ctx context.Context) (natpmpClient, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	timeout := n.timeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	return n.dial(timeout), nil
}

// observe checks an epoch the gateway reported (RFC 6886 §3.6): when it
// shows the gateway lost its state, every record of it is dropped, since
// those mappings are gone too. The state is saved either way, so the next
// run compares against this observation.
func (n *NATPMP) observe(epoch uint32) error {
	if w := n.record().Restarted("NAT-PMP", epoch, n.now()); w != "" {
		n.warnings = append(n.warnings, w)
	}
	return n.save()
}

func (n *NATPMP) save() error {
	if err := n.state.Save(); err != nil {
		return fmt.Errorf("recording NAT-PMP mappings: %w", err)
	}
	return nil
}

// Add implements forward.Backend with a mapping request (RFC 6886 §3.3).
// The granted mapping is recorded in the state file before Add returns.
func (n *NATPMP) Add(ctx context.Context, m forward.Mapping) (forward.Mapping, error) {
	if m.InternalHost.Unmap() != n.local {
		return forward.Mapping{}, &natpmpError{err: forward.ErrNotAuthorized, msg: fmt.Sprintf(
			"adding mapping %s to %v: NAT-PMP only maps ports to the host that asks (RFC 6886 §3.3); run portfwd on %v, or use a gateway that speaks PCP with third-party mappings or UPnP",
			m.Key, m.InternalHost, m.InternalHost)}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	doing := "adding mapping " + m.Key.String()
	res, err := n.mapRequest(ctx, doing, m.Protocol, m.InternalPort, m.ExternalPort, lifetimeFor(m.Lease))
	if err != nil {
		return forward.Mapping{}, err
	}
	if got := res.MappedExternalPort; got != m.ExternalPort {
		if _, sib := n.sibling(m, got); !m.AnyExternal || sib {
			return forward.Mapping{}, n.movedPort(ctx, m, got)
		}
		// external_port: any takes the port granted; the mapping is
		// recorded, and so listed, under it.
		n.record().Drop(m.Key)
		m.ExternalPort = got
	}
	if res.PortMappingLifetimeInSeconds == 0 {
		return forward.Mapping{}, fmt.Errorf("%s: the gateway answered success but granted no lifetime; try backend upnp", doing)
	}
	granted := m
	granted.Lease = time.Duration(res.PortMappingLifetimeInSeconds) * time.Second
	n.record().Put(forward.Recorded{Mapping: m, GrantedPort: res.MappedExternalPort, Expires: n.now().Add(granted.Lease)})
	if err := n.save(); err != nil {
		return forward.Mapping{}, fmt.Errorf("%s: %w", doing, err)
	}
	return granted, nil
}

// lifetimeFor is the lifetime to request for a lease, in whole seconds,
// never zero: zero would delete the mapping (RFC 6886 §3.3).
func lifetimeFor(lease time.Duration) int {
	if lease <= 0 {
		lease = natpmpPermanent
	}
	secs := (lease + time.Second - 1) / time.Second
	return int(min(secs, 1<<32-1))
}

// mapRequest sends one mapping request (lifetime 0 deletes) and notes the
// epoch of the answer (RFC 6886 §3.6).
func (n *NATPMP) mapRequest(ctx context.Context, doing string, p forward.Protocol, internal, external uint16, lifetime int) (*natpmp.AddPortMappingResult, error) {
	c, err := n.client(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", doing, err)
	}
	res, err := c.AddPortMapping(string(p), int(internal), int(external), lifetime)
	if err != nil {
		return nil, n.explain(ctx, doing, err, lifetime != 0)
	}
	if err := n.observe(res.SecondsSinceStartOfEpoc); err != nil {
		return nil, fmt.Errorf("%s: %w", doing, err)
	}
	return res, nil
}

// movedPort handles a gateway that granted another external port than the
// one asked for, which it may do when the port is taken (RFC 6886 §3.3).
// Unless the rule says external_port: any, that is not the rule the user
// wrote, so the mapping is deleted again and
// the add fails as a conflict with an unknown holder. A port this host
// already holds for another rule with the same internal port is left
// alone: the gateway refreshed that mapping instead of making a second one.
func (n *NATPMP) movedPort(ctx context.Context, m forward.Mapping, got uint16) error {
	doing := "adding mapping " + m.Key.String()
	conflict := &forward.ConflictError{Want: m}
	if sib, ok := n.sibling(m, got); ok {
		conflict.Holder = sib.Mapping
		return &natpmpError{err: conflict, msg: fmt.Sprintf(
			"%s: the gateway answered with the mapping of %s (external port %d): it keeps one mapping per internal port; give the rules different internal ports, or use backend upnp",
			doing, sib.Key, got)}
	}
	msg := fmt.Sprintf("%s: the gateway would only forward %s as external port %d (the port is taken, perhaps by another device); choose another external_port",
		doing, m.Key, got)
	if _, err := n.mapRequest(ctx, "deleting the mapping it granted instead", m.Protocol, m.InternalPort, got, 0); err != nil {
		msg += fmt.Sprintf(" (and %v: remove external port %d on the router)", err, got)
	}
	if err := n.restoreSiblings(ctx, m.Protocol, m.InternalPort, m.Key); err != nil {
		msg += fmt.Sprintf(" (and %v)", err)
	}
	return &natpmpError{err: conflict, msg: msg}
}

// sibling is the record of another rule that the gateway's answer matches:
// same protocol and internal port, granted external port got.
func (n *NATPMP) sibling(m forward.Mapping, got uint16) (forward.Recorded, bool) {
	for _, r := range n.record().Entries {
		if r.Key != m.Key && r.Protocol == m.Protocol && r.InternalPort == m.InternalPort && r.GrantedPort == got {
			return r, true
		}
	}
	return forward.Recorded{}, false
}

// Delete implements forward.Backend: a mapping request with lifetime 0
// (RFC 6886 §3.4) for the recorded internal port, suggesting the granted
// external port. A gateway deletes every mapping of that internal port, so
// other rules' mappings on it are made again. Without a record portfwd does
// not own the mapping and sends nothing.
func (n *NATPMP) Delete(ctx context.Context, m forward.Mapping) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.record().Find(m.Key)
	if !ok {
		return nil
	}
	if _, err := n.mapRequest(ctx, "deleting mapping "+m.Key.String(), r.Protocol, r.InternalPort, r.GrantedPort, 0); err != nil {
		return err
	}
	n.record().Drop(m.Key)
	if err := n.save(); err != nil {
		return err
	}
	return n.restoreSiblings(ctx, r.Protocol, r.InternalPort, m.Key)
}

// restoreSiblings re-creates the recorded mappings other than except that
// share a protocol and internal port with a mapping just deleted. RFC 6886
// §3.4 has the gateway ignore the suggested external port of a deletion,
// and miniupnpd 2.3.1 does: it deletes every mapping of that internal port
// for this host.
func (n *NATPMP) restoreSiblings(ctx context.Context, p forward.Protocol, internal uint16, except forward.Key) error {
	var errs []error
	for _, r := range slices.Clone(n.record().Entries) {
		if r.Key == except || r.Protocol != p || r.InternalPort != internal {
			continue
		}
		if err := n.restore(ctx, r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// restore maps r again as it was requested and records what is granted;
// a record that cannot be restored is dropped, so the next plan re-creates it.
func (n *NATPMP) restore(ctx context.Context, r forward.Recorded) error {
	doing := fmt.Sprintf("restoring mapping %s (the gateway deleted it with another mapping of internal port %d)", r.Key, r.InternalPort)
	res, err := n.mapRequest(ctx, doing, r.Protocol, r.InternalPort, r.ExternalPort, lifetimeFor(r.Lease))
	if err == nil && res.MappedExternalPort != r.ExternalPort {
		err = fmt.Errorf("%s: the gateway granted external port %d instead", doing, res.MappedExternalPort)
	}
	if err != nil {
		n.record().Drop(r.Key)
		return errors.Join(err, n.save())
	}
	r.GrantedPort, r.Expires = res.MappedExternalPort, n.now().Add(time.Duration(res.PortMappingLifetimeInSeconds)*time.Second)
	n.record().Put(r)
	return n.save()
}
