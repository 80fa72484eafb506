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
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/soap"

	"github.com/portfwd/portfwd/forward"
)

// soapTimeout bounds each SOAP request when DiscoverOptions.RequestTimeout
// is zero (see IGD.limit): a router that accepts the connection and never
// answers must not hang portfwd. miniupnpd takes up to ~0.5 s for an
// AddPortMapping with a hundred mappings present (LAB.md), so this is
// generous.
const soapTimeout = 10 * time.Second

// serviceKind is one of the port-mapping services, in order of preference.
type serviceKind struct {
	Type  string // full service type URN
	Short string // "WANIPConnection:2"
	// MaxLease is the longest lease the service grants; 0 means a zero
	// (permanent) lease is honoured. WANIPConnection:2 §2.3.16: "a value of
	// 0 … is interpreted as 604800 seconds", and it caps leases there.
	MaxLease uint32
}

// services lists the port-mapping services by preference. WANIPConnection:2
// first: it is what IGD:2 routers (and miniupnpd's default build) offer.
// The choice is by service type only, whatever the device version, since
// routers mix them (IGD:1 devices with WANIPConnection:2 services exist).
var services = []serviceKind{
	{Type: "urn:schemas-upnp-org:service:WANIPConnection:2", Short: "WANIPConnection:2", MaxLease: 604800},
	{Type: "urn:schemas-upnp-org:service:WANIPConnection:1", Short: "WANIPConnection:1"},
	{Type: "urn:schemas-upnp-org:service:WANPPPConnection:1", Short: "WANPPPConnection:1"},
}

// newIGDAt reads the description at loc and builds the backend, requiring
// the description, every redirect and the control URL to be on host, the
// address that answered SSDP as the gateway.
func newIGDAt(ctx context.Context, loc *url.URL, host string) (*IGD, error) {
	root, err := fetchDescription(ctx, loc, host)
	if err != nil {
		return nil, fmt.Errorf("reading the UPnP description at %s: %w", loc, err)
	}
	kind, svc, err := pickService(root)
	if err != nil {
		return nil, fmt.Errorf("UPnP device at %s: %w", loc, err)
	}
	control := &svc.ControlURL.URL
	if err := onGateway(control, host); err != nil {
		return nil, fmt.Errorf("the UPnP description at %s names a %s control URL elsewhere, refused: %w", loc, kind.Short, err)
	}
	local, err := localAddrToward(loc)
	if err != nil {
		return nil, fmt.Errorf("finding this host's address toward %s: %w", loc.Host, err)
	}
	return newIGD(kind, loc.String(), control, shortType(root.Device.DeviceType), local, host), nil
}

// fetchDescription reads the root device description at loc, as
// goupnp.DeviceByURLCtx does (UDA 1.1 §2.3: relative URLs resolve against
// URLBase, else the description's own URL), but through gatewayClient, so
// that the fetch stays on host and its size is bounded. ctx bounds it:
// discovery's, which ends with its window (DiscoverOptions.Timeout).
func fetchDescription(ctx context.Context, loc *url.URL, host string) (*goupnp.RootDevice, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return nil, err
	}
	hc := gatewayClient(host, 0)
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
	client, sc := newClient(kind, control, host)
	return &IGD{
		client:     client,
		soap:       sc,
		rootURL:    rootURL,
		controlURL: control.String(),
		deviceType: deviceType,
		service:    kind,
		local:      local,
	}
}

// pickService finds the most preferred port-mapping service anywhere in the
// device tree (it usually sits in WANDevice/WANConnectionDevice).
func pickService(root *goupnp.RootDevice) (serviceKind, *goupnp.Service, error) {
	for _, kind := range services {
		if svc := findService(root, kind.Type); svc != nil {
			return kind, svc, nil
		}
	}
	return serviceKind{}, nil, fmt.Errorf("%s (%s) offers no WANIPConnection or WANPPPConnection service, so it cannot forward ports; %s",
		root.Device.FriendlyName, shortType(root.Device.DeviceType), otherProtocols)
}

// findService is Device.FindService, tolerating whitespace around the
// serviceType (seen in hand-written router descriptions) and skipping
// services without a usable controlURL.
func findService(root *goupnp.RootDevice, serviceType string) *goupnp.Service {
	var found *goupnp.Service
	root.Device.VisitServices(func(s *goupnp.Service) {
		if found == nil && strings.TrimSpace(s.ServiceType) == serviceType && s.ControlURL.Ok {
			found = s
		}
	})
	return found
}

// newClient wraps goupnp's generated client for kind around the control
// URL. All three share the igdClient methods with identical signatures,
// and need nothing of the description but the control URL, so the
// discovery cache can rebuild them. Their HTTP client is gatewayClient:
// requests stay on host, answers are bounded and read leniently; each
// request's own context bounds its time (IGD.limit).
func newClient(kind serviceKind, control *url.URL, host string) (igdClient, *soap.SOAPClient) {
	sc := goupnp.ServiceClient{SOAPClient: soap.NewSOAPClient(*control)}
	sc.SOAPClient.HTTPClient = gatewayClient(host, 0)
	return typedClient(kind, sc), sc.SOAPClient
}

// typedClient is goupnp's generated client for kind.
func typedClient(kind serviceKind, sc goupnp.ServiceClient) igdClient {
	switch kind.Short {
	case "WANIPConnection:2":
		return &internetgateway2.WANIPConnection2{ServiceClient: sc}
	case "WANIPConnection:1":
		return &internetgateway2.WANIPConnection1{ServiceClient: sc}
	default:
		return &internetgateway2.WANPPPConnection1{ServiceClient: sc}
	}
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
