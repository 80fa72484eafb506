package pcp

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"

	"github.com/portfwd/portfwd/forward"
)

// PCP over IPv6 (RFC 6887 §1: the protocol is the same on both families).
// An IPv6 mapping is a pinhole: the gateway translates nothing, so the
// external address is the internal one, and the external port the
// internal port. The gateway's PCP server is asked on its IPv6 address —
// a server on another address, with its own epoch and its own records
// (a gatewayRecord of its own in the state file) — by a second Backend,
// Backend.six, that shares the records and their lock. Its requests come
// from the address being opened (pcpMapper.from).
//
// The IPv6 server is asked only when there is something to ask: an IPv6
// pinhole to add, or one recorded to list or delete. Properties.IPv6 says
// that there is a server to ask (an IPv6 gateway is known); whether it
// answers shows at the first request, whose error says what to do.

// fallback6 is what to try when the gateway does not answer PCP on IPv6.
const fallback6 = "upnp (its IPv6 firewall control), or family: ipv4 for the rule"

// openIPv6 makes the IPv6 side of a PCP backend for the server opts name,
// or the IPv6 default route's next hop; nil when there is neither, or no
// route to it. It sends nothing.
func (b *Backend) openIPv6(opts Options) *Backend {
	gw := opts.Gateway6
	if !gw.IsValid() {
		gw = defaultGateway6(routeFile6)
	}
	if !gw.Is6() || gw.Is4In6() {
		return nil
	}
	server := netip.AddrPortFrom(gw, cmp.Or(opts.port6, serverPort))
	local, err := forward.SourceAddr(server)
	if err != nil || !local.Is6() {
		return nil
	}
	m := newPCPMapper(server, local, opts.Timeout).(*pcpMapper)
	m.x.fallback = fallback6
	return &Backend{m: m, gw: gw, server: server, local: local, rec: b.rec, now: b.now, timeout: b.timeout, pinholes: true}
}

// restartWarning tells the user that the gateway restarted, its epoch
// going from prev to cur, and what portfwd does about it; the IPv6 side
// says it of its own server and pinholes.
func (b *Backend) restartWarning(prev, cur uint32) string {
	if b.pinholes {
		return fmt.Sprintf("the gateway restarted (%s epoch over IPv6 went from %d to %d): every pinhole will be re-created", b.m.facts().title, prev, cur)
	}
	return fmt.Sprintf("the gateway restarted (%s epoch went from %d to %d): every mapping will be re-created", b.m.facts().title, prev, cur)
}

// side is the backend that asks for mappings on k: the IPv6 side for a
// pinhole, else b itself; nil for a pinhole without an IPv6 side.
func (b *Backend) side(k forward.Key) *Backend {
	if k.Family == forward.IPv6 {
		return b.six
	}
	return b
}

// noIPv6 is the error for a pinhole asked of a backend without an IPv6
// side: forward.Apply refuses those before asking (Properties.IPv6).
func (b *Backend) noIPv6(k forward.Key) error {
	return &forward.NoIPv6Error{Key: k, Backend: b.m.facts().name}
}

// recorded reports whether the records hold anything of b's gateway,
// without making an empty record of it.
func (b *Backend) recorded() bool {
	g := b.rec.lookup(b.m.facts().name, b.gw)
	return g != nil && g.holds()
}

// list6 lists the recorded pinholes, after an ANNOUNCE to the IPv6 server
// shows it has not restarted since (as List does on IPv4). With nothing
// recorded nothing is asked. A server that does not answer leaves the
// records as they are, with a warning: the IPv4 forwards are still
// planned, and each pinhole's renewal asks again.
func (b *Backend) list6(ctx context.Context) []forward.Mapping {
	six := b.six
	if six == nil || !six.recorded() {
		return nil
	}
	if _, err := six.announce(ctx, "listing pinholes"); err != nil {
		six.warnings = append(six.warnings, fmt.Sprintf("the recorded IPv6 pinholes could not be checked: %v", err))
	}
	return six.record().live(six.now())
}

// checkPinhole says so when a pinhole was granted on another external
// address than the internal one: the gateway translates IPv6 (NPTv6),
// and the address to give friends is the one granted. It says so once
// per pinhole and address, not at every renewal of a backend kept by the
// daemon (forward.Warner).
func (b *Backend) checkPinhole(m forward.Mapping, a answer) {
	if m.Family != forward.IPv6 || !a.external.IsValid() || a.external.IsUnspecified() || a.external == m.InternalHost.WithZone("") {
		return
	}
	if b.translated[m.Key] == a.external {
		return
	}
	if b.translated == nil {
		b.translated = make(map[forward.Key]netip.Addr)
	}
	b.translated[m.Key] = a.external
	b.warnings = append(b.warnings, fmt.Sprintf("the gateway granted pinhole %s on external address %s, not on the host's own %s: it translates IPv6 (NPTv6); the internet reaches the server at [%s]:%d",
		m.Key, a.external, m.InternalHost, a.external, a.port))
}
