package upnp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// pinholes is the IGD's IPv6 side: it opens, renews, reports and closes
// the pinholes of IPv6 mappings (Key.Family IPv6) with
// WANIPv6FirewallControl:1 on the same router, reached over IPv6 from the
// internal client's own address (secure mode; see pinhole.go), and keeps
// their UniqueIDs in pinholeRecords.
type pinholes struct {
	mu      sync.Mutex
	service bool             // the router's description lists WANIPv6FirewallControl:1
	udn     string           // the root device's UDN: its IPv6 description must carry the same
	self6   forward.SelfIPv6 // this host's stable global IPv6 address (ChooseSelfIPv6)
	rootURL *url.URL         // the IPv4 description, for the direct try (findRoot6)
	timeout time.Duration    // each request's; soapTimeout when zero
	rec     *pinholeRecords

	// root6 and control6 are the description and control URL found over
	// IPv6; nil until found (or remembered in the discovery cache).
	root6, control6 *url.URL
	cached          bool // they came from the cache and no request has proven them yet
	clients         map[netip.Addr]*PinholeClient
	notes           []string // for Warnings

	// Seams, set by newPinholes; tests replace them.
	find     func(ctx context.Context) (root, control *url.URL, err error)
	client   func(control *url.URL, local netip.Addr) *PinholeClient
	isLocal  func(netip.Addr) bool
	remember func() // rewrites the discovery cache once root6 is found
	now      func() time.Time
	routes   string // the IPv6 routing table (/proc/net/ipv6_route), for directRoot6
}

// usable reports whether IPv6 mappings can be opened: the router serves
// pinholes and this host has an address to open them to.
func (p *pinholes) usable() bool { return p != nil && p.service && p.self6.Addr.IsValid() }

// newPinholes is the IPv6 side of the IGD described at rootURL.
func newPinholes(service bool, udn string, rootURL *url.URL, self6 forward.SelfIPv6, rec *pinholeRecords) *pinholes {
	p := &pinholes{service: service, udn: udn, rootURL: rootURL, self6: self6, rec: rec,
		clients: map[netip.Addr]*PinholeClient{}, isLocal: isLocalAddr, now: time.Now, routes: "/proc/net/ipv6_route"}
	p.find = p.findRoot6
	p.client = func(control *url.URL, local netip.Addr) *PinholeClient {
		return newPinholeClientAt(control, local, p.timeout)
	}
	return p
}

// list is the recorded pinholes whose lease has not run out.
func (p *pinholes) list() []forward.Mapping {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rec.refresh()
	return p.rec.live(p.now())
}

// restartSlack is how far a router's uptime may fall short of a
// pinhole's age and the router still count as up since before it: the
// uptime is whole seconds (miniupnpd subtracts two time() readings), and
// the record's time is taken just after the router opened the pinhole.
const restartSlack = 1500 * time.Millisecond

// restartedBefore forgets every record when one pinhole is older than the
// router's uptime up: the router restarted after opening it.
func (p *pinholes) restartedBefore(up time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	boot := p.now().Add(-up - restartSlack)
	for _, r := range p.rec.file.Pinholes {
		if r.Expires.Add(-r.Lease).Before(boot) {
			p.notes = append(p.notes, fmt.Sprintf("the router restarted %s ago, after opening pinhole %s: opening its pinholes again", forward.LeaseString(up), r.Key))
			_ = p.rec.dropAll()
			return
		}
	}
}

// stillThere asks the router about the first recorded pinhole (presence)
// and reports whether it could tell: the pinhole is there, or gone, when
// every record is forgotten — a router that lost one pinhole restarted
// and lost them all, and the UniqueIDs it gives from then on name other
// pinholes. Any other answer (a router without the action, no way to
// reach it) tells nothing.
func (p *pinholes) stillThere(ctx context.Context) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.IndexFunc(p.rec.file.Pinholes, func(r pinholeRecord) bool { return r.ID != 0 && r.Expires.After(p.now()) })
	if i < 0 {
		return true // nothing the router could have lost
	}
	held := p.rec.file.Pinholes[i]
	there, err := p.presence(ctx, held)
	switch {
	case err != nil:
		return false
	case !there:
		p.notes = append(p.notes, fmt.Sprintf("the router no longer has pinhole %s (it restarted, or the pinhole ran out): opening its pinholes again", held.Key))
		_ = p.rec.dropAll()
	}
	return true
}

// presence asks the router whether held's pinhole is there with
// CheckPinholeWorking, which changes nothing on it: there (an answer, or
// 709 NoTrafficReceived, which miniupnpd always gives), not there
// (IsPinholeGone), or an error when the answer tells neither.
func (p *pinholes) presence(ctx context.Context, held pinholeRecord) (bool, error) {
	err := p.call(ctx, held.Mapping, func(c *PinholeClient) error {
		_, err := c.CheckPinholeWorking(ctx, held.ID)
		return err
	})
	switch {
	case err == nil || soapCode(err) == codeNoTrafficReceived:
		return true, nil
	case IsPinholeGone(err):
		return false, nil
	}
	return false, err
}

// add opens m's pinhole, or renews it: miniupnpd answers AddPinhole for a
// pinhole it has with that pinhole's UniqueID, renewed, and opens one it
// lost (a reboot) under a new one, so one action serves both and the
// record always holds the current ID. The lease is m's, capped to the
// day WANIPv6FirewallControl:1 allows; a permanent rule gets that day,
// which the planner renews.
func (p *pinholes) add(ctx context.Context, m forward.Mapping) (forward.Mapping, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rec.refresh()
	if held, ok := p.rec.get(m.Key); ok && !mayReplace(held.Mapping, m) {
		return forward.Mapping{}, fmt.Errorf("opening pinhole %s: %w", m.Key, &forward.ConflictError{Want: m, Holder: held.Mapping})
	}
	m.Lease = pinholeGrant(m.Lease)
	hole := Pinhole{Client: m.InternalHost, Port: m.InternalPort, Protocol: wireProtocol(m.Protocol), Lease: m.Lease}
	var id uint16
	err := p.call(ctx, m, func(c *PinholeClient) (err error) {
		id, err = c.AddPinhole(ctx, hole)
		return err
	})
	if err != nil {
		return p.addFailed(ctx, m, err)
	}
	return m, p.record(m, id)
}

// pinholeGrant is the lease asked for and granted for lease: whole
// seconds, at most maxPinholeLease, which a permanent lease becomes.
func pinholeGrant(lease time.Duration) time.Duration {
	if lease <= 0 || lease > maxPinholeLease {
		return maxPinholeLease
	}
	return max(lease.Round(time.Second), time.Second)
}

// record keeps pinhole id for m.
func (p *pinholes) record(m forward.Mapping, id uint16) error {
	m.Enabled = true
	if err := p.rec.put(pinholeRecord{Mapping: m, ID: id, Expires: p.now().Add(m.Lease)}); err != nil {
		return fmt.Errorf("pinhole %s is open (UniqueID %d), but %w; it closes when its lease runs out", m.Key, id, err)
	}
	return nil
}

// addFailed explains a failed AddPinhole. 702 FirewallDisabled asks
// GetFirewallStatus: a router whose IPv6 firewall is off lets every port
// in already, so the mapping is granted as it is (recorded with ID 0, no
// pinhole) and a note says so; a router that allows no pinholes is a
// refusal that names the setting.
func (p *pinholes) addFailed(ctx context.Context, m forward.Mapping, err error) (forward.Mapping, error) {
	switch soapCode(err) {
	case codeFirewallDisabled, codeInboundPinholeForbidden:
		st, serr := p.status(ctx, m)
		switch {
		case serr == nil && !st.Enabled:
			p.notes = append(p.notes, fmt.Sprintf("no pinhole needed for %s: the router's IPv6 firewall is off, so it lets IPv6 in to every port of %s already", m.Key, m.InternalHost))
			return m, p.record(m, 0)
		case serr == nil && !st.InboundAllowed:
			return forward.Mapping{}, fmt.Errorf("opening pinhole %s: the router does not allow inbound IPv6 pinholes: enable \"allow IPv6 pinholes\" (often \"UPnP IPv6\" or \"IPv6 firewall: allow UPnP\") in its settings, or open the port in its web page: %w: %w",
				m.Key, forward.ErrNotAuthorized, err)
		}
	case codeNotAuthorized:
		return forward.Mapping{}, fmt.Errorf("opening pinhole %s: %w: %w", m.Key, forward.ErrNotAuthorized, err)
	}
	return forward.Mapping{}, fmt.Errorf("opening pinhole %s: %w", m.Key, err)
}

// status asks GetFirewallStatus from m's internal host.
func (p *pinholes) status(ctx context.Context, m forward.Mapping) (FirewallStatus, error) {
	var st FirewallStatus
	err := p.call(ctx, m, func(c *PinholeClient) (err error) {
		st, err = c.GetFirewallStatus(ctx)
		return err
	})
	return st, err
}

// remove closes the pinhole recorded on m.Key and forgets it; one the
// router no longer has is closed already.
func (p *pinholes) remove(ctx context.Context, m forward.Mapping) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rec.refresh()
	held, ok := p.rec.get(m.Key)
	if !ok {
		return nil
	}
	if held.ID != 0 {
		err := p.call(ctx, held.Mapping, func(c *PinholeClient) error { return c.DeletePinhole(ctx, held.ID) })
		if err != nil && !IsPinholeGone(err) {
			return fmt.Errorf("closing pinhole %s (UniqueID %d): %w", m.Key, held.ID, err)
		}
	}
	return p.rec.drop(m.Key)
}

// lookup is forward.Finder for an IPv6 key: no record is no pinhole, at
// no cost; a recorded one is asked about with one request that changes
// nothing (presence; a router without CheckPinholeWorking is asked with
// UpdatePinhole instead, which renews it). An answer that the router has
// no such pinhole (a reboot, after which UniqueIDs start again at 1)
// forgets every record of the gateway, so the reconcile that follows
// opens them all again — a record kept would name another pinhole once
// the first is opened again.
func (p *pinholes) lookup(ctx context.Context, k forward.Key) (forward.Mapping, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rec.refresh()
	held, ok := p.rec.get(k)
	if !ok || !held.Expires.After(p.now()) {
		return forward.Mapping{}, false, nil
	}
	if held.ID != 0 {
		there, err := p.presence(ctx, held)
		if err != nil { // it could not tell: ask by renewing
			err = p.call(ctx, held.Mapping, func(c *PinholeClient) error { return c.UpdatePinhole(ctx, held.ID, held.Lease) })
			there = err == nil
			if IsPinholeGone(err) {
				err = nil
			}
		}
		if err != nil {
			return forward.Mapping{}, false, fmt.Errorf("asking about pinhole %s (UniqueID %d): %w", k, held.ID, err)
		}
		if !there {
			return forward.Mapping{}, false, p.rec.dropAll()
		}
	}
	m := held.Mapping
	m.Lease, m.Enabled = held.Expires.Sub(p.now()).Round(time.Second), true
	return m, true, nil
}

// call runs one pinhole action from m's internal host. Secure mode grants
// pinholes only to the address asking, so the request must come from
// m.InternalHost, which must be this host's. A control URL remembered in
// the discovery cache that fails below SOAP is searched for again, once.
func (p *pinholes) call(ctx context.Context, m forward.Mapping, action func(*PinholeClient) error) error {
	if !p.isLocal(m.InternalHost) {
		return fmt.Errorf("UPnP opens a pinhole only from the address it opens (secure mode, 606), and %s is not this host's: run portfwd on that host, or use backend pcp (PCP third-party mappings) or the iptables backend on the router, which open pinholes for other hosts: %w",
			m.InternalHost, forward.ErrNotAuthorized)
	}
	c, err := p.clientFrom(ctx, m.InternalHost)
	if err != nil {
		return err
	}
	err = action(c)
	if p.cached && ctx.Err() == nil && transportFailure(err) {
		p.forgetRoot6()
		if c, err = p.clientFrom(ctx, m.InternalHost); err != nil {
			return err
		}
		err = action(c)
	}
	p.cached = false
	return err
}

// clientFrom is the pinhole client sending from local, finding the
// router's IPv6 control URL first if need be.
func (p *pinholes) clientFrom(ctx context.Context, local netip.Addr) (*PinholeClient, error) {
	if p.control6 == nil {
		root, control, err := p.find(ctx)
		if err != nil {
			return nil, err
		}
		p.root6, p.control6 = root, control
		if p.remember != nil {
			p.remember()
		}
	}
	c := p.clients[local]
	if c == nil {
		c = p.client(p.control6, local)
		p.clients[local] = c
	}
	return c, nil
}

// forgetRoot6 drops the IPv6 URLs and the clients made for them.
func (p *pinholes) forgetRoot6() {
	p.root6, p.control6, p.cached = nil, nil, false
	clear(p.clients)
}

// warnings returns the notes and the records' warnings since the last
// call, and forgets them.
func (p *pinholes) warnings() []string {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := append(p.notes, p.rec.warnings...)
	p.notes, p.rec.warnings = nil, nil
	return n
}

// isLocalAddr reports whether a is one of this host's addresses.
func isLocalAddr(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ad := range addrs {
		if n, ok := ad.(*net.IPNet); ok {
			if b, ok := netip.AddrFromSlice(n.IP); ok && b.Unmap() == a.WithZone("") {
				return true
			}
		}
	}
	return false
}

// errNoIPv6Description: the router's description over IPv6 was not found.
var errNoIPv6Description = errors.New("the router's UPnP description over IPv6 was not found")
