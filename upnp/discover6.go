package upnp

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/soap"

	"github.com/portfwd/portfwd/forward"
)

// Finding the router over IPv6. Pinhole requests must come from the
// host's IPv6 address to the router's IPv6 control URL (secure mode), so
// the IGD found over IPv4 is looked for again over IPv6: an SSDP M-SEARCH
// to ff02::c (UDA 1.1 §1.1.2, the link-local SSDP group) on the interface
// of this host's IPv6 address, sent from that address; then, when nothing
// usable answers, the router's own IPv6 address (the IPv6 default route's
// gateway) at the port and path of its IPv4 description. An answer counts
// only when its description carries the UDN of the IPv4 IGD — the same
// router, not any LAN device that answers SSDP — and its pinhole control
// URL is on the host that served it. Found URLs go into the discovery
// cache, so later runs do not search.

// ssdpMulticast6 is the link-local SSDP group and port.
var ssdpMulticast6 = netip.MustParseAddrPort("[ff02::c]:1900")

// search6Targets are the STs of the IPv6 search: the device types (every
// IGD answers IGD:1, see firstTarget) and the pinhole service itself.
var search6Targets = []string{firstTarget, "urn:schemas-upnp-org:device:InternetGatewayDevice:2", pinholeServiceType}

// search6Budget bounds the IPv6 search: the router answers within
// milliseconds, and the direct try follows.
const search6Budget = time.Second

// findRoot6 finds the router's description and pinhole control URL over
// IPv6: SSDP first, then the router's address directly.
func (p *pinholes) findRoot6(ctx context.Context) (*url.URL, *url.URL, error) {
	if !p.self6.Addr.IsValid() {
		return nil, nil, fmt.Errorf("%w: this host has no stable global IPv6 address (%s)", errNoIPv6Description, p.self6.Why)
	}
	var tried []string
	for _, loc := range p.search6(ctx) {
		root, control, err := p.tryRoot6(ctx, loc)
		if err == nil {
			return root, control, nil
		}
		tried = append(tried, err.Error())
	}
	if loc, ok := p.directRoot6(); ok {
		root, control, err := p.tryRoot6(ctx, loc)
		if err == nil {
			return root, control, nil
		}
		tried = append(tried, err.Error())
	}
	if len(tried) == 0 {
		tried = append(tried, "nothing answered")
	}
	return nil, nil, fmt.Errorf("%w: neither SSDP on %s from %s nor the IPv6 default gateway gave a description with the router's UDN %s (%s); is UPnP over IPv6 enabled on the router? else use backend pcp, or family: ipv4",
		errNoIPv6Description, ssdpMulticast6.Addr(), p.self6.Addr, p.udn, strings.Join(tried, "; "))
}

// search6 sends the IPv6 M-SEARCHes and collects the distinct IPv6
// LOCATIONs answered within search6Budget, or until ctx ends.
func (p *pinholes) search6(ctx context.Context) []*url.URL {
	ctx, cancel := context.WithTimeout(ctx, search6Budget)
	defer cancel()
	conn, err := net.ListenUDP("udp6", &net.UDPAddr{IP: p.self6.Addr.AsSlice()})
	if err != nil {
		return nil
	}
	defer conn.Close()
	dst := netip.AddrPortFrom(ssdpMulticast6.Addr().WithZone(p.self6.Interface), ssdpMulticast6.Port())
	for _, st := range search6Targets {
		_, _ = conn.WriteToUDPAddrPort(mSearch(ssdpMulticast6, st), dst)
	}
	answers := make(chan ssdpAnswer, 16)
	go readAnswers(ctx, conn, answers)
	return p.collect6(ctx, answers)
}

// collect6 takes answers until the first IPv6 LOCATION arrives and a
// moment more (other devices answer too), or ctx ends.
func (p *pinholes) collect6(ctx context.Context, answers <-chan ssdpAnswer) []*url.URL {
	var locs []*url.URL
	seen := map[string]bool{}
	var settle <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return locs
		case <-settle:
			return locs
		case a := <-answers:
			host := locationHost(a.resp.Location)
			if !host.Is6() || host.Is4In6() || seen[a.resp.Location.String()] {
				continue
			}
			seen[a.resp.Location.String()] = true
			locs = append(locs, p.zoned(a.resp.Location))
			if settle == nil {
				settle = time.After(50 * time.Millisecond)
			}
		}
	}
}

// zoned gives a link-local LOCATION the interface it was found on.
func (p *pinholes) zoned(u *url.URL) *url.URL {
	a := locationHost(u)
	if !a.IsLinkLocalUnicast() || p.self6.Interface == "" {
		return u
	}
	z := *u
	z.Host = net.JoinHostPort(a.WithZone(p.self6.Interface).String(), u.Port())
	return &z
}

// directRoot6 is the IPv4 description's port and path on the router's
// IPv6 address, the gateway of this host's IPv6 default route.
func (p *pinholes) directRoot6() (*url.URL, bool) {
	gw, ok := defaultGateway6(p.routes)
	if !ok || p.rootURL == nil {
		return nil, false
	}
	if gw.IsLinkLocalUnicast() {
		gw = gw.WithZone(p.self6.Interface)
	}
	port := p.rootURL.Port()
	if port == "" {
		port = "80"
	}
	u := *p.rootURL
	u.Host = net.JoinHostPort(gw.String(), port)
	return &u, true
}

// tryRoot6 reads the description at loc from this host's IPv6 address
// and returns it with its pinhole control URL when it is the same router.
func (p *pinholes) tryRoot6(ctx context.Context, loc *url.URL) (*url.URL, *url.URL, error) {
	host := gatewayHost(loc)
	root, err := fetchRoot6(ctx, loc, host, p.self6.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", loc.Redacted(), err)
	}
	if udn := strings.TrimSpace(root.Device.UDN); p.udn == "" || !strings.EqualFold(udn, p.udn) {
		return nil, nil, fmt.Errorf("%s is another device (UDN %q)", loc.Redacted(), forward.Printable(udn))
	}
	control, ok := pinholeControl(root)
	if !ok {
		return nil, nil, fmt.Errorf("%s offers no WANIPv6FirewallControl:1 over IPv6", loc.Redacted())
	}
	if err := onGateway(control, host); err != nil {
		return nil, nil, err
	}
	return loc, control, nil
}

// fetchRoot6 reads a root description, bounded in time like discovery.
func fetchRoot6(ctx context.Context, loc *url.URL, host string, local netip.Addr) (*goupnp.RootDevice, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultDiscoverTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return nil, err
	}
	hc := gatewayClientFrom(host, local)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	return decodeDescription(resp.Body, loc)
}

// gatewayClientFrom is gatewayClient with its connections made from
// local (none set: any address).
func gatewayClientFrom(host string, local netip.Addr) http.Client {
	c := gatewayClient(host, 0)
	if local.IsValid() {
		t := directTransport.Clone()
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: local.AsSlice()}}
		t.DialContext = d.DialContext
		c.Transport = &gatewayTransport{host: host, base: t}
	}
	return c
}

// newPinholeClientAt is the pinhole client for control, sending every
// request from local (the internal client's address: secure mode) and
// bounding each by timeout (soapTimeout when zero).
func newPinholeClientAt(control *url.URL, local netip.Addr, timeout time.Duration) *PinholeClient {
	if timeout <= 0 {
		timeout = soapTimeout
	}
	sc := soap.NewSOAPClient(*control)
	sc.HTTPClient = gatewayClientFrom(gatewayHost(control), local)
	return &PinholeClient{c: serviceClient{sc: sc, urn: pinholeServiceType}, control: control, timeout: timeout}
}

// defaultGateway6 is the gateway of the IPv6 default route in
// /proc/net/ipv6_route (destination ::/0 with a next hop).
func defaultGateway6(path string) (netip.Addr, bool) {
	f, err := os.Open(path)
	if err != nil {
		return netip.Addr{}, false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 10 || fields[0] != strings.Repeat("0", 32) || fields[1] != "00" {
			continue
		}
		if gw, ok := parseHex6(fields[4]); ok && !gw.IsUnspecified() {
			return gw, true
		}
	}
	return netip.Addr{}, false
}

// parseHex6 reads an address as /proc/net/ipv6_route spells it: 32 hex
// digits.
func parseHex6(s string) (netip.Addr, bool) {
	var b [16]byte
	if len(s) != 32 {
		return netip.Addr{}, false
	}
	for i := range b {
		var v byte
		if _, err := fmt.Sscanf(s[2*i:2*i+2], "%02x", &v); err != nil {
			return netip.Addr{}, false
		}
		b[i] = v
	}
	return netip.AddrFrom16(b), true
}
