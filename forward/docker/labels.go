package docker

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/portfwd/portfwd/forward"
)

// The labels a container asks for forwards with (README "Docker").
const (
	LabelForward     = "portfwd.forward"     // published | EXT:HOSTPORT/PROTO,…
	LabelService     = "portfwd.service"     // a catalog entry: protocol, ports, probe
	LabelName        = "portfwd.name"        // the rule's name; the container's name by default
	LabelProbe       = "portfwd.probe"       // the probe portfwd check uses
	LabelFamily      = "portfwd.family"      // ipv4, ipv6 or dual
	LabelDescription = "portfwd.description" // shown by status and check
	LabelNetwork     = "portfwd.network"     // the macvlan/ipvlan network to forward to, when several
)

// Published is the portfwd.forward value that forwards every port the
// container publishes on the host, each on its own number.
const Published = "published"

// maxLabelLen bounds a label's value: a long one is a mistake, and every
// value ends up in an error message.
const maxLabelLen = 1024

// spec is one rule a container asks for, in the config file's own keys,
// so that the config loader parses and validates it as it does the file.
type spec struct {
	fields map[string]any
	from   string // the label its ports came from: LabelForward or LabelService
}

// asks reports whether the container asks for any forward.
func asks(c Container) bool {
	_, fwd := c.Labels[LabelForward]
	_, svc := c.Labels[LabelService]
	return fwd || svc
}

// specs turns the container's labels into rule specs, or says which label
// is wrong and why.
func specs(c Container) ([]spec, error) {
	for k, v := range c.Labels {
		if strings.HasPrefix(k, "portfwd.") && len(v) > maxLabelLen {
			return nil, labelError(c, k, fmt.Errorf("longer than %d characters", maxLabelLen))
		}
	}
	host, err := target(c)
	if err != nil {
		return nil, labelError(c, LabelNetwork, err)
	}
	base := baseFields(c, host)
	value, ok := c.Labels[LabelForward]
	if !ok {
		return []spec{{fields: base, from: LabelService}}, nil
	}
	ports, err := forwards(c, strings.TrimSpace(value), host.IsValid())
	if err != nil {
		return nil, labelError(c, LabelForward, err)
	}
	out := make([]spec, 0, len(ports))
	for _, p := range ports {
		f := cloneFields(base)
		f["protocol"], f["external_port"], f["internal_port"] = p.proto, p.ext, p.internal
		out = append(out, spec{fields: f, from: LabelForward})
	}
	return out, nil
}

// baseFields are the keys every rule of the container shares.
func baseFields(c Container, host netip.Addr) map[string]any {
	f := map[string]any{"internal_host": "self"}
	if host.IsValid() {
		f["internal_host"] = host.String()
	}
	for label, key := range map[string]string{LabelService: "service", LabelProbe: "probe", LabelFamily: "family", LabelDescription: "description"} {
		if v, ok := c.Labels[label]; ok {
			f[key] = strings.TrimSpace(v)
		}
	}
	if _, ok := f["description"]; !ok {
		f["description"] = "container " + c.Name
	}
	return f
}

func cloneFields(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// labelError names the container and the label in err.
func labelError(c Container, label string, err error) error {
	return fmt.Errorf("container %s: label %s=%q: %w (the container is skipped; fix the label and recreate it)",
		forward.Printable(c.Name), label, forward.Printable(c.Labels[label]), err)
}

// target is the container's own LAN address when it has one (a macvlan
// or ipvlan network; LabelNetwork chooses among several), else the zero
// address: the Docker host, which publishes its ports.
func target(c Container) (netip.Addr, error) {
	var lan []Network
	for _, n := range c.Networks {
		if n.onLAN() {
			lan = append(lan, n)
		}
	}
	want, chosen := c.Labels[LabelNetwork]
	if !chosen {
		if len(lan) > 1 {
			return netip.Addr{}, fmt.Errorf("the container has addresses on %d LAN networks (%s): choose one with %s", len(lan), networkNames(lan), LabelNetwork)
		}
		if len(lan) == 1 {
			return lan[0].Addr, nil
		}
		return netip.Addr{}, nil
	}
	for _, n := range c.Networks {
		if n.Name == want && n.onLAN() {
			return n.Addr, nil
		}
		if n.Name == want {
			return netip.Addr{}, nil // a bridge network: the host publishes
		}
	}
	return netip.Addr{}, fmt.Errorf("the container is not on that network (it is on %s)", networkNames(c.Networks))
}

func networkNames(ns []Network) string {
	names := make([]string, len(ns))
	for i, n := range ns {
		names[i] = forward.Printable(n.Name)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// portSpec is one forward of the portfwd.forward label, as the config
// file would write it.
type portSpec struct{ ext, internal, proto string }

// forwards parses portfwd.forward. On a LAN network (onLAN) the ports are
// the container's own; else they must be published on the host.
func forwards(c Container, value string, onLAN bool) ([]portSpec, error) {
	if value == Published {
		return published(c, onLAN)
	}
	var out []portSpec
	for _, item := range strings.Split(value, ",") {
		p, err := parseItem(strings.TrimSpace(item))
		if err == nil && !onLAN {
			err = checkPublished(c, p)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// itemPattern is one forward: EXT[:PORT][/PROTO], ports or ranges.
var itemPattern = regexp.MustCompile(`^([0-9-]+)(?::([0-9-]+))?(?:/([a-zA-Z]+))?$`)

// parseItem splits one forward; the loader checks the ports and the
// protocol (the same messages as in the file).
func parseItem(item string) (portSpec, error) {
	m := itemPattern.FindStringSubmatch(item)
	if m == nil {
		return portSpec{}, fmt.Errorf("%q: want published, or EXT:HOSTPORT/PROTO (e.g. 26000:26001/tcp), comma-separated", forward.Printable(item))
	}
	p := portSpec{ext: m[1], internal: m[2], proto: strings.ToLower(m[3])}
	if p.internal == "" {
		p.internal = p.ext
	}
	if p.proto == "" {
		p.proto = "tcp"
	}
	return p, nil
}

// checkPublished says which port of p the container does not publish.
// Ports and protocols that do not parse are left to the loader, which
// says why in the words it uses for the file.
func checkPublished(c Container, p portSpec) error {
	r, err := forward.ParsePortRange(p.internal)
	if _, perr := forward.ParseProtocol(p.proto); err != nil || (perr != nil && p.proto != "both") {
		return nil
	}
	for _, proto := range protocolsOf(p.proto) {
		for port := int(r.First); port <= int(r.Last); port++ {
			if !publishes(c, uint16(port), proto) {
				return fmt.Errorf("port %d/%s is not published on the host (docker run -p %d:…/%s)", port, proto, port, proto)
			}
		}
	}
	return nil
}

func protocolsOf(proto string) []string {
	if proto == "both" {
		return []string{"tcp", "udp"}
	}
	return []string{proto}
}

func publishes(c Container, port uint16, proto string) bool {
	return slices.ContainsFunc(c.Ports, func(p Port) bool {
		return p.HostPort == port && p.Protocol == proto && reachable(p)
	})
}

// reachable reports whether a published port answers on the host's LAN
// address: one bound to loopback does not.
func reachable(p Port) bool {
	a, err := netip.ParseAddr(p.HostIP)
	return err != nil || !a.IsLoopback()
}

// published is every port the container publishes (on a LAN network:
// every port it exposes), each once per protocol, in order.
func published(c Container, onLAN bool) ([]portSpec, error) {
	seen := map[string]bool{}
	var out []portSpec
	for _, p := range c.Ports {
		port := p.HostPort
		if onLAN {
			port = p.ContainerPort
		}
		key := p.Protocol + "/" + strconv.Itoa(int(port))
		if port == 0 || seen[key] || (!onLAN && !reachable(p)) {
			continue
		}
		seen[key] = true
		n := strconv.Itoa(int(port))
		out = append(out, portSpec{ext: n, internal: n, proto: p.Protocol})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the container publishes no port (docker run -p HOSTPORT:PORT)")
	}
	slices.SortFunc(out, func(a, b portSpec) int { return strings.Compare(a.proto+"/"+a.ext, b.proto+"/"+b.ext) })
	return out, nil
}
