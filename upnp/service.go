package upnp

import (
	"cmp"
	"context"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/soap"

	"github.com/portfwd/portfwd/forward"
)

// serviceKind is a port-mapping service type: WANIPConnection or
// WANPPPConnection, of any version, under urn:schemas-upnp-org or under
// urn:dslforum-org, where TR-064 ISP boxes (Huawei HG531, FRITZ!Box's
// TR-064 tree) declare the same services with the same actions.
type serviceKind struct {
	Type    string // the full URN as the router spells it
	Short   string // "WANIPConnection:2", "dslforum-org:WANPPPConnection:1"
	IP      bool   // WANIPConnection; else WANPPPConnection
	Version int
	Forum   bool // urn:dslforum-org
	// MaxLease is the longest lease the service grants; 0 means a zero
	// (permanent) lease is honoured. WANIPConnection:2 §2.3.16: "a value of
	// 0 … is interpreted as 604800 seconds", and it caps leases there;
	// later versions are taken to keep that rule.
	MaxLease uint32
}

// parseServiceKind reads a serviceType URN; ok is false for anything but
// a port-mapping service.
func parseServiceKind(urn string) (serviceKind, bool) {
	urn = strings.TrimSpace(urn)
	rest, ok := strings.CutPrefix(urn, "urn:schemas-upnp-org:service:")
	forum := false
	if !ok {
		rest, forum = strings.CutPrefix(urn, "urn:dslforum-org:service:")
		if !forum {
			return serviceKind{}, false
		}
	}
	name, ver, ok := strings.Cut(rest, ":")
	v, err := strconv.Atoi(ver)
	if !ok || err != nil || v < 1 || (name != "WANIPConnection" && name != "WANPPPConnection") {
		return serviceKind{}, false
	}
	k := serviceKind{Type: urn, Short: rest, IP: name == "WANIPConnection", Version: v, Forum: forum}
	if forum {
		k.Short = "dslforum-org:" + rest
	}
	if v >= 2 {
		k.MaxLease = maxLeaseV2
	}
	return k, true
}

// listsPages reports whether the service has GetListOfPortMappings
// (WANIPConnection:2 §2.5.20).
func (k serviceKind) listsPages() bool { return k.IP && k.Version >= 2 && !k.Forum }

// compare orders kinds by preference: the UPnP Forum's types before the
// DSL Forum's (a FRITZ!Box's TR-064 twins want a login), WANIPConnection
// before WANPPPConnection, the newest version first.
func (k serviceKind) compare(o serviceKind) int {
	return cmp.Or(boolOrder(!k.Forum, !o.Forum), boolOrder(k.IP, o.IP), cmp.Compare(o.Version, k.Version))
}

// boolOrder puts true first.
func boolOrder(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}

// candidate is one port-mapping service of a device description.
type candidate struct {
	kind    serviceKind
	control *url.URL
}

// candidates lists every port-mapping service in the device tree with a
// usable control URL, most preferred first (serviceKind.compare), in
// tree order among equals.
func candidates(root *goupnp.RootDevice) []candidate {
	out := portMappingServices(root)
	slices.SortStableFunc(out, func(a, b candidate) int { return a.kind.compare(b.kind) })
	return out
}

// portMappingServices lists the port-mapping services with a usable
// control URL in tree order, each control URL once.
func portMappingServices(root *goupnp.RootDevice) []candidate {
	var out []candidate
	seen := map[string]bool{}
	root.Device.VisitServices(func(s *goupnp.Service) {
		kind, ok := parseServiceKind(s.ServiceType)
		if !ok || !s.ControlURL.Ok || seen[s.ControlURL.URL.String()] {
			return
		}
		seen[s.ControlURL.URL.String()] = true
		out = append(out, candidate{kind: kind, control: &s.ControlURL.URL})
	})
	return out
}

// chooseConnection picks the WAN connection to map on. With one candidate it is that
// one, at no cost. Devices with several WAN connections (a MikroTik with
// two uplinks, a FRITZ!Box with a WANIPConnection and a WANPPPConnection,
// a Livebox's unused IP one) have only one that is up: each is asked for
// its status and external address, and the best answer wins (wanScore);
// ties go to the more preferred. sc makes the client for a control URL.
func chooseConnection(ctx context.Context, cands []candidate, sc func(*url.URL) *soap.SOAPClient) candidate {
	if len(cands) == 1 {
		return cands[0]
	}
	best, bestScore := cands[0], -1
	for _, c := range cands {
		s := wanScore(ctx, serviceClient{sc: sc(c.control), urn: c.kind.Type})
		if s > bestScore {
			best, bestScore = c, s
		}
		if s == scorePublic || ctx.Err() != nil {
			break
		}
	}
	return best
}

// wanScore ranks a connection by what it says of itself.
const (
	scoreDown    = 0 // no address, not connected, or no answer
	scorePrivate = 1 // connected, with an address the internet cannot reach (CGNAT: still diagnosable)
	scorePublic  = 2
)

// wanScore asks one connection for its status (GetStatusInfo, which some
// routers lack: a fault there says nothing) and its external address.
func wanScore(ctx context.Context, c serviceClient) int {
	if status, err := c.GetStatusInfoCtx(ctx); err == nil && status != "" && !strings.EqualFold(status, "Connected") {
		return scoreDown
	}
	s, err := c.GetExternalIPAddressCtx(ctx)
	if err != nil {
		return scoreDown
	}
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	switch {
	case err != nil || a.IsUnspecified():
		return scoreDown
	case forward.IsPublic(a.Unmap()):
		return scorePublic
	}
	return scorePrivate
}
