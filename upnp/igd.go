package upnp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// IGD is a forward.Backend for a UPnP Internet Gateway Device. Create it
// with Discover.
//
// Requests are few, because each costs a round trip and some routers are
// slow to answer (miniupnpd rescans its firewall rules on every pass of its
// main loop; with a slow log sink that reached ~100 ms per request with 50
// mappings in the lab): List uses GetListOfPortMappings where the service has it;
// Add decides from what List saw in the last few seconds (snapshotTTL)
// whether the key may be replaced, instead of asking first, and reads the
// granted lease back only when the router may have changed it. An IGD
// built from the discovery cache rediscovers the gateway once if its first
// request fails below SOAP (see guard).
type IGD struct {
	client     serviceClient // the port-mapping service's SOAP endpoint
	rootURL    string
	controlURL string
	deviceType string // "InternetGatewayDevice:2"
	service    serviceKind
	family     string // routerFamily.Name, "" when unknown
	local      netip.Addr
	snap       snapshot
	check      *staleCheck // non-nil when built from the discovery cache
	// udn and pinholeService are what the description says of IPv6: the
	// root device's UDN and whether it lists WANIPv6FirewallControl:1.
	udn            string
	pinholeService bool
	v6             *pinholes // the IPv6 side; nil: no IPv6 mappings
}

var (
	_ forward.Backend = (*IGD)(nil)
	_ forward.Finder  = (*IGD)(nil)
	_ forward.Warner  = (*IGD)(nil)
)

// Properties describes the gateway. Routers run UPnP in secure mode by
// default (mappings only for the asking host), so ThirdParty is only if allowed.
// WANIPConnection:2 caps leases at a week, so only the v1 services keep
// permanent leases. Protocols names the pinhole service too when IPv6
// mappings can be opened.
func (g *IGD) Properties() forward.Properties {
	protocols := g.protocols()
	if g.v6.usable() {
		protocols = append(protocols, "WANIPv6FirewallControl:1")
	}
	return forward.Properties{
		Name:            "upnp",
		Gateway:         g.rootURL,
		Protocols:       protocols,
		PermanentLeases: g.service.MaxLease == 0,
		ThirdParty:      forward.ThirdPartyIfAllowed,
		IPv6:            g.v6.usable(),
	}
}

// Warnings are the notes of the IPv6 side (forward.Warner): a pinhole the
// router did not need because its IPv6 firewall is off.
func (g *IGD) Warnings() []string { return g.v6.warnings() }

// protocols names the device and service versions, for Properties.
func (g *IGD) protocols() []string {
	return []string{"UPnP " + g.deviceType, g.service.Short}
}

// LocalAddr is the address this host uses to reach the gateway: the
// internal client a secure-mode router accepts from us. The CLI resolves
// "internal_host: self" with it.
func (g *IGD) LocalAddr() netip.Addr { return g.local }

// maxListEntries bounds List against a router that never reports the end
// of its table.
const maxListEntries = 65535

// List reads the port-mapping table: with GetListOfPortMappings on a
// WANIPConnection:2 service, else (or when that fails) with
// GetGenericPortMappingEntry. What it saw is kept for Add (snapshot).
// The IPv6 pinholes portfwd opened follow, from their records
// (listPinholes).
func (g *IGD) List(ctx context.Context) ([]forward.Mapping, error) {
	var out []forward.Mapping
	err := g.guard(ctx, func() error {
		var err error
		out, err = g.list(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	g.snap.remember(out)
	return append(out, g.listPinholes(ctx)...), nil
}

// listPinholes is the IPv6 pinholes recorded and not run out. The router
// cannot list them, so one is asked after (pinholes.stillThere:
// CheckPinholeWorking, which changes nothing): a router that lost it
// restarted, or let it run out, and the records are forgotten so that the
// pass opens them all again. Where the router cannot tell (no
// CheckPinholeWorking), its uptime does (GetStatusInfo's NewUptime): a
// router up for less time than a pinhole has existed restarted since.
// Either costs one request, only while pinholes are recorded; a router
// that answers neither is believed, and the daemon's check (Find) still
// finds a lost pinhole.
func (g *IGD) listPinholes(ctx context.Context) []forward.Mapping {
	if len(g.v6.list()) == 0 {
		return nil
	}
	if g.v6.stillThere(ctx) {
		return g.v6.list()
	}
	var up time.Duration
	err := g.guard(ctx, func() error {
		var err error
		up, err = g.client.UptimeCtx(ctx)
		return err
	})
	if err == nil && up > 0 {
		g.v6.restartedBefore(up)
	}
	return g.v6.list()
}

// list picks the listing method. Quirk: routers that claim
// WANIPConnection:2 yet answer GetListOfPortMappings with 401, 501, 606,
// an HTTP error or a listing that cannot be read still enumerate with
// GetGenericPortMappingEntry, so any failure falls back to it — except a
// cancelled context, and a transport failure on an unproven cached IGD,
// which guard answers by rediscovering.
func (g *IGD) list(ctx context.Context) ([]forward.Mapping, error) {
	if !g.service.listsPages() {
		return g.listGeneric(ctx)
	}
	out, err := g.listFast(ctx)
	if err == nil || ctx.Err() != nil || (g.check.unproven() && transportFailure(err)) {
		return out, err
	}
	return g.listGeneric(ctx)
}

// listGeneric reads the table with GetGenericPortMappingEntry at index 0,
// 1, 2, … until the router reports the end of the table.
func (g *IGD) listGeneric(ctx context.Context) ([]forward.Mapping, error) {
	var out []forward.Mapping
	for i := 0; i < maxListEntries; i++ {
		m, err := g.entry(ctx, uint16(i))
		if endOfTable(err) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("listing mappings on %s (entry %d): %w", g.rootURL, i, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// endOfTable reports whether err ends a GetGenericPortMappingEntry walk.
// The spec answer is 713 SpecifiedArrayIndexInvalid (WANIPConnection:1
// §2.4.14). Quirks: some routers answer 714 NoSuchEntryInArray, and some
// old ones 402 Invalid Args, for the first index past the end.
func endOfTable(err error) bool {
	switch soapCode(err) {
	case codeArrayIndexInvalid, codeNoSuchEntry, codeInvalidArgs:
		return true
	}
	return false
}

// entry reads one GetGenericPortMappingEntry.
func (g *IGD) entry(ctx context.Context, index uint16) (forward.Mapping, error) {
	_, ext, proto, intPort, client, enabled, desc, lease, err := g.client.GetGenericPortMappingEntryCtx(ctx, index)
	if err != nil {
		return forward.Mapping{}, asSOAPError("GetGenericPortMappingEntry", err)
	}
	return toMapping(ext, proto, intPort, client, enabled, desc, lease)
}

// toMapping converts the fields of a port-mapping entry.
func toMapping(ext uint16, proto string, intPort uint16, client string, enabled bool, desc string, lease uint32) (forward.Mapping, error) {
	p, err := forward.ParseProtocol(proto)
	if err != nil {
		return forward.Mapping{}, err
	}
	host, err := netip.ParseAddr(strings.TrimSpace(client))
	if err != nil {
		return forward.Mapping{}, fmt.Errorf("internal client %q: %w", client, err)
	}
	return forward.Mapping{
		Key:          forward.Key{Protocol: p, ExternalPort: ext},
		InternalHost: host.Unmap(),
		InternalPort: intPort,
		Description:  desc,
		Lease:        time.Duration(lease) * time.Second,
		Enabled:      enabled,
	}, nil
}

// specific reads the mapping on key with GetSpecificPortMappingEntry; the
// error is 714 NoSuchEntryInArray when there is none.
func (g *IGD) specific(ctx context.Context, key forward.Key) (forward.Mapping, error) {
	intPort, client, enabled, desc, lease, err := g.client.GetSpecificPortMappingEntryCtx(ctx, "", key.ExternalPort, wireProtocol(key.Protocol))
	if err != nil {
		return forward.Mapping{}, asSOAPError("GetSpecificPortMappingEntry", err)
	}
	return toMapping(key.ExternalPort, string(key.Protocol), intPort, client, enabled, desc, lease)
}

// Find reads the mapping on k with one GetSpecificPortMappingEntry
// (forward.Finder), under the cache guard as every request. 714
// NoSuchEntryInArray, the one answer WANIPConnection:1 §2.4.15 gives for
// an absent key, is found false; any other fault is an error, and the
// caller lists instead, so a router that answers the action badly costs
// requests, never a forward. An IPv6 key is a pinhole (pinholes.lookup):
// one UpdatePinhole on the recorded one, the required action that names
// it, which renews the lease it had and changes nothing else.
func (g *IGD) Find(ctx context.Context, k forward.Key) (forward.Mapping, bool, error) {
	if k.Family == forward.IPv6 {
		return g.v6.lookup(ctx, k)
	}
	var m forward.Mapping
	err := g.guard(ctx, func() error {
		var err error
		m, err = g.specific(ctx, k)
		return err
	})
	switch {
	case err == nil:
		return m, true, nil
	case soapCode(err) == codeNoSuchEntry:
		return forward.Mapping{}, false, nil
	}
	return forward.Mapping{}, false, fmt.Errorf("reading mapping %s on %s: %w", k, g.rootURL, err)
}

// Delete removes the mapping on m.Key. 714 NoSuchEntryInArray means it is
// already gone, which is success. An IPv6 key closes the recorded pinhole
// (pinholes.remove).
func (g *IGD) Delete(ctx context.Context, m forward.Mapping) error {
	if m.Family == forward.IPv6 {
		if g.v6 == nil {
			return nil // nothing recorded, nothing to close
		}
		return g.v6.remove(ctx, m)
	}
	err := g.guard(ctx, func() error {
		return asSOAPError("DeletePortMapping", g.client.DeletePortMappingCtx(ctx, "", m.ExternalPort, wireProtocol(m.Protocol)))
	})
	switch {
	case err == nil, soapCode(err) == codeNoSuchEntry:
		g.snap.drop(m.Key)
		return nil
	case soapCode(err) == codeNotAuthorized:
		// Secure mode also guards deletion: only the mapping's own
		// internal client may remove it.
		return fmt.Errorf("deleting mapping %s: the gateway lets only %s remove it (UPnP secure mode): %w: %w",
			m.Key, m.InternalHost, forward.ErrNotAuthorized, err)
	}
	return fmt.Errorf("deleting mapping %s: %w", m.Key, err)
}

// errNoExternalAddr: the gateway answered GetExternalIPAddress without an
// address it could be reached on.
var errNoExternalAddr = errors.New("no usable external address")

// ExternalAddr asks the gateway for its WAN address (GetExternalIPAddress).
func (g *IGD) ExternalAddr(ctx context.Context) (netip.Addr, error) {
	var s string
	err := g.guard(ctx, func() error {
		var err error
		s, err = g.client.GetExternalIPAddressCtx(ctx)
		return err
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("asking %s for its external address: %w", g.rootURL, asSOAPError("GetExternalIPAddress", err))
	}
	addr, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || addr.IsUnspecified() {
		// Quirk: routers without a WAN connection answer "" or "0.0.0.0",
		// and so does miniupnpd when its own WAN address is private or
		// shared ("not suitable for external IP").
		return netip.Addr{}, fmt.Errorf("the gateway reports no usable external address (%q): its own WAN address is private (carrier-grade NAT or another router in front), or its internet connection is down: %w: %w",
			s, errNoExternalAddr, forward.ErrDoubleNAT)
	}
	return addr.Unmap(), nil
}

// wireProtocol is the protocol as UPnP spells it: "TCP" or "UDP"
// (WANIPConnection:1 §2.2.17).
func wireProtocol(p forward.Protocol) string { return strings.ToUpper(string(p)) }
