package upnp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/portfwd/portfwd/forward"
)

// cacheFormat is the version of the cache file layout; an entry of any
// other version is ignored.
const cacheFormat = 2

// cacheEntry is what a repeated run needs to talk to a gateway without SSDP
// or the description fetch: miniupnpd waits ~50 ms before it answers an
// M-SEARCH, which is most of a re-apply's time otherwise.
type cacheEntry struct {
	FormatVersion int      `json:"format_version"`
	Gateway       string   `json:"gateway"`     // the gateway's LAN address: the cache key
	Local         string   `json:"local"`       // this host's address toward it
	RootURL       string   `json:"root_url"`    // the root description, for people
	ControlURL    string   `json:"control_url"` // the port-mapping service's control URL
	ServiceType   string   `json:"service_type"`
	Protocols     []string `json:"protocols"`        // Properties().Protocols
	Family        string   `json:"family,omitempty"` // routerFamily.Name
	// The IPv6 side (format 2): the root device's UDN, whether it serves
	// WANIPv6FirewallControl:1, and, once found, its description and
	// pinhole control URL over IPv6.
	UDN         string `json:"udn,omitempty"`
	Pinholes    bool   `json:"pinholes,omitempty"`
	RootURL6    string `json:"root_url6,omitempty"`
	ControlURL6 string `json:"control_url6,omitempty"`
}

// cachePath is the entry file for gateway gw in dir, one per gateway
// (GatewayKey).
func cachePath(dir string, gw netip.Addr) string {
	return filepath.Join(dir, "upnp-"+GatewayKey(gw)+".json")
}

// GatewayKey names gateway gw in file names of the cache directory: its
// address and, where the ARP table tells, its hardware address (see
// gatewayMAC). Auto detection's memory is keyed the same way.
func GatewayKey(gw netip.Addr) string {
	key := strings.ReplaceAll(gw.String(), ":", "_")
	if mac := gatewayMAC(gw); mac != "" {
		key += "-" + mac
	}
	return key
}

// entryFor describes g, found at gateway gw.
func entryFor(gw netip.Addr, g *IGD) cacheEntry {
	e := cacheEntry{FormatVersion: cacheFormat, Gateway: gw.String(), Local: g.local.String(),
		RootURL: g.rootURL, ControlURL: g.controlURL, ServiceType: g.service.Type, Protocols: g.protocols(), Family: g.family,
		UDN: g.udn, Pinholes: g.pinholeService}
	if v6 := g.v6; v6 != nil && v6.control6 != nil {
		e.RootURL6, e.ControlURL6 = v6.root6.String(), v6.control6.String()
	}
	return e
}

// writeCache stores e atomically: a temp file in the same directory,
// fsynced, then renamed over the entry, so a reader never sees half a file
// and a crash leaves the old entry or the new one.
func writeCache(path string, e cacheEntry) error {
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return forward.WriteFileAtomic(path, ".upnp-*.tmp", append(b, '\n'))
}

// readCache reads the entry at path; ok is false when there is none or it
// cannot be used.
func readCache(path string) (cacheEntry, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return cacheEntry{}, false
	}
	var e cacheEntry
	if json.Unmarshal(b, &e) != nil || e.FormatVersion != cacheFormat {
		return cacheEntry{}, false
	}
	return e, true
}

// igdFromCache rebuilds the IGD e describes, with no network I/O. The
// entry must be for gw, its URLs on gw as discovery requires (onGateway: an
// entry written by an older portfwd, or by anyone who can write the cache
// directory, may point elsewhere), and this host must still reach the
// gateway from the same address: a UDP "connect" picks the route and sends
// nothing. A different address means another network that happens to use
// the same gateway address, so the entry is not used.
func igdFromCache(e cacheEntry, gw netip.Addr) (*IGD, error) {
	kind, ok := parseServiceKind(e.ServiceType)
	if !ok || e.Gateway != gw.String() || len(e.Protocols) != 2 {
		return nil, fmt.Errorf("cache entry for %s does not fit", gw)
	}
	control, err := cachedURL(e.ControlURL, gw)
	if err != nil {
		return nil, err
	}
	if _, err := cachedURL(e.RootURL, gw); err != nil {
		return nil, err
	}
	local, err := localAddrToward(control)
	if err != nil || local.String() != e.Local {
		return nil, fmt.Errorf("this host now reaches %s from %v, not %s", gw, local, e.Local)
	}
	device := strings.TrimPrefix(e.Protocols[0], "UPnP ")
	g := newIGD(kind, e.RootURL, control, device, local, gatewayHost(control))
	g.family, g.udn, g.pinholeService = e.Family, e.UDN, e.Pinholes
	if root6, control6, ok := cachedURLs6(e); ok {
		g.v6 = &pinholes{root6: root6, control6: control6}
	}
	return g, nil
}

// cachedURLs6 are the entry's IPv6 URLs when both are absolute, on one
// IPv6 address (the router's, as discovery checked), and the entry has a
// UDN; ok is false otherwise, and the IGD searches again when it needs them.
func cachedURLs6(e cacheEntry) (*url.URL, *url.URL, bool) {
	root, err := url.Parse(e.RootURL6)
	if err != nil || e.UDN == "" || root.Host == "" {
		return nil, nil, false
	}
	host, err := netip.ParseAddr(root.Hostname())
	if err != nil || !host.Is6() || host.Is4In6() {
		return nil, nil, false
	}
	control, err := url.Parse(e.ControlURL6)
	if err != nil || control.Host == "" || onGateway(control, gatewayHost(root)) != nil {
		return nil, nil, false
	}
	return root, control, true
}

// cachedURL parses a URL from a cache entry for gw: absolute, and on gw.
func cachedURL(s string, gw netip.Addr) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("cached URL %q: not absolute", s)
	}
	if err := onGateway(u, addrHost(gw)); err != nil {
		return nil, fmt.Errorf("cached URL refused: %w", err)
	}
	return u, nil
}

// fromCache is the IGD cached for gw, unproven, or nil when there is no
// usable entry (none, corrupt, another format, another network) or the
// options say not to look.
func fromCache(opts DiscoverOptions, gw netip.Addr) *IGD {
	if opts.CacheDir == "" || opts.Refresh {
		return nil
	}
	path := cachePath(opts.CacheDir, gw)
	e, ok := readCache(path)
	if !ok {
		return nil
	}
	g, err := igdFromCache(e, gw)
	if err != nil {
		return nil
	}
	g.check = &staleCheck{path: path, rediscover: func(ctx context.Context) (*IGD, error) {
		fresh := opts
		fresh.Refresh = true
		return Discover(ctx, fresh)
	}}
	g.check.pending.Store(true)
	return g
}

// storeInCache writes the entry for g. A failed write only costs the next
// run a discovery, so it is not reported.
func storeInCache(opts DiscoverOptions, gw netip.Addr, g *IGD) {
	if opts.CacheDir != "" {
		_ = writeCache(cachePath(opts.CacheDir, gw), entryFor(gw, g))
	}
}
