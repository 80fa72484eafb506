package upnp

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/soap"

	"github.com/portfwd/portfwd/forward"
)

// soapTimeout bounds each SOAP request when DiscoverOptions.RequestTimeout
// is zero (see IGD.limit): a router that accepts the connection and never
// answers must not hang portfwd. miniupnpd takes up to ~0.5 s for an
// AddPortMapping with a hundred mappings present (LAB.md), so this is
// generous.
const soapTimeout = 10 * time.Second

// newIGDAt reads the description at loc and builds the backend, requiring
// the description, every redirect and the control URL to be on host, the
// address that answered SSDP as the gateway.
func newIGDAt(ctx context.Context, loc *url.URL, host string) (*IGD, error) {
	root, server, err := fetchDescription(ctx, loc, host)
	if err != nil {
		return nil, fmt.Errorf("reading the UPnP description at %s: %w", loc, err)
	}
	cands := candidates(root)
	if len(cands) == 0 {
		return nil, fmt.Errorf("UPnP device at %s: %s (%s) offers no WANIPConnection or WANPPPConnection service, so it cannot forward ports; %s",
			loc, root.Device.FriendlyName, shortType(root.Device.DeviceType), otherProtocols)
	}
	for _, c := range cands {
		if err := onGateway(c.control, host); err != nil {
			return nil, fmt.Errorf("the UPnP description at %s names a %s control URL elsewhere, refused: %w", loc, c.kind.Short, err)
		}
	}
	c := chooseConnection(ctx, cands, func(u *url.URL) *soap.SOAPClient { return soapClient(u, host) })
	kind, control := c.kind, c.control
	local, err := localAddrToward(loc)
	if err != nil {
		return nil, fmt.Errorf("finding this host's address toward %s: %w", loc.Host, err)
	}
	g := newIGD(kind, loc.String(), control, shortType(root.Device.DeviceType), local, host)
	g.family = familyOf(root, server)
	_, g.pinholeService = pinholeControl(root)
	g.udn = strings.TrimSpace(root.Device.UDN)
	return g, nil
}

// fetchDescription reads the root device description at loc, as
// goupnp.DeviceByURLCtx does (UDA 1.1 §2.3: relative URLs resolve against
// URLBase, else the description's own URL), but through gatewayClient, so
// that the fetch stays on host and its size is bounded. ctx bounds it:
// discovery's, which ends with its window (DiscoverOptions.Timeout). It
// returns the answer's Server header too, which names the firmware
// (familyOf).
func fetchDescription(ctx context.Context, loc *url.URL, host string) (*goupnp.RootDevice, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return nil, "", err
	}
	hc := gatewayClient(host, 0)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("HTTP %s", resp.Status)
	}
	root, err := decodeDescription(resp.Body, loc)
	return root, resp.Header.Get("Server"), err
}

// decodeDescription decodes a root device description fetched from loc
// and resolves its URLs.
func decodeDescription(r io.Reader, loc *url.URL) (*goupnp.RootDevice, error) {
	root := new(goupnp.RootDevice)
	dec := xml.NewDecoder(r)
	dec.DefaultSpace = goupnp.DeviceXMLNamespace
	dec.CharsetReader = goupnp.CharsetReaderDefault
	if err := dec.Decode(root); err != nil {
		return nil, err
	}
	base := loc
	if root.URLBaseStr != "" {
		u, err := url.Parse(root.URLBaseStr)
		if err != nil {
			return nil, fmt.Errorf("URLBase %q: %w", root.URLBaseStr, err)
		}
		base = u
	}
	root.SetURLBase(base)
	return root, nil
}

// newIGD assembles an IGD from what discovery (or its cache) found; host
// is the gateway every request must go to.
func newIGD(kind serviceKind, rootURL string, control *url.URL, deviceType string, local netip.Addr, host string) *IGD {
	return &IGD{
		client:     serviceClient{sc: soapClient(control, host), urn: kind.Type},
		rootURL:    rootURL,
		controlURL: control.String(),
		deviceType: deviceType,
		service:    kind,
		local:      local,
	}
}

// soapClient is goupnp's SOAP client for the control URL. It needs
// nothing of the description but the control URL, so the discovery cache
// can rebuild it. Its HTTP client is gatewayClient: requests stay on host,
// answers are bounded and read leniently; each request's own context
// bounds its time (IGD.limit).
func soapClient(control *url.URL, host string) *soap.SOAPClient {
	sc := soap.NewSOAPClient(*control)
	sc.HTTPClient = gatewayClient(host, 0)
	return sc
}

// shortType turns "urn:schemas-upnp-org:device:InternetGatewayDevice:2"
// into "InternetGatewayDevice:2".
func shortType(urn string) string {
	urn = strings.TrimSpace(urn)
	if i := strings.Index(urn, ":device:"); i >= 0 {
		return urn[i+len(":device:"):]
	}
	if i := strings.Index(urn, ":service:"); i >= 0 {
		return urn[i+len(":service:"):]
	}
	return urn
}

// localAddrToward is the address this host uses to reach the description's
// host (forward.SourceAddr): what a router in secure mode sees as the
// requesting client.
func localAddrToward(loc *url.URL) (netip.Addr, error) {
	port := loc.Port()
	if port == "" {
		port = "80"
	}
	dst, err := net.ResolveUDPAddr("udp", net.JoinHostPort(loc.Hostname(), port))
	if err != nil {
		return netip.Addr{}, err
	}
	return forward.SourceAddr(dst.AddrPort())
}
