package forward

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// backendNames are the values gateway.backend accepts.
var backendNames = []string{"auto", "upnp", "natpmp", "pcp", "iptables"}

// BackendNames lists the values gateway.backend accepts (for completion
// and messages). The caller may modify the result.
func BackendNames() []string { return slices.Clone(backendNames) }

// maxNameLen keeps tags short: "portfwd:" plus the name must fit the
// description field of routers that truncate it (some keep only 32-64 bytes).
const maxNameLen = 40

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// lookupTimeout bounds each internal_host lookup, so a dead DNS server makes
// Load fail with a message instead of hanging.
const lookupTimeout = 5 * time.Second

// ValidateGateway checks a Gateway after the CLI has applied environment
// and flag overrides: the backend is known, the address is an IPv4 literal
// (an IPv6 one for backend pcp; or empty) and the lease is not negative.
func ValidateGateway(g GatewaySettings) error {
	var errs []error
	if err := checkBackend(g.Backend); err != nil {
		errs = append(errs, fmt.Errorf("gateway.backend: %w", err))
	}
	if err := checkAddress(g.Address, g.Backend); err != nil {
		errs = append(errs, fmt.Errorf("gateway.address: %w", err))
	}
	if err := checkLease(g.Lease); err != nil {
		errs = append(errs, fmt.Errorf("gateway.lease: %w", err))
	}
	if err := checkInterface(g.WANInterface); err != nil {
		errs = append(errs, fmt.Errorf("gateway.wan_interface: %w", err))
	}
	return errors.Join(errs...)
}

// interfacePattern is what Linux accepts as an interface name: at most 15
// bytes (IFNAMSIZ-1), no "/", ":" or blanks (dev_valid_name).
var interfacePattern = regexp.MustCompile(`^[^/:\s]{1,15}$`)

// checkInterface accepts "" (the default route's interface) or a name
// Linux could give an interface.
func checkInterface(name string) error {
	if name == "" || interfacePattern.MatchString(name) && name != "." && name != ".." {
		return nil
	}
	return fmt.Errorf("%q is not a network interface name; give the router's uplink, like eth0 or ppp0 (ip -br link lists them)", name)
}

func checkBackend(name string) error {
	if slices.Contains(backendNames, name) {
		return nil
	}
	hint := ""
	if s := suggest(name, backendNames); s != "" {
		hint = "did you mean " + s + "? "
	}
	return fmt.Errorf("unknown backend %q (%swant one of %s)", name, hint, strings.Join(backendNames, ", "))
}

// checkAddress accepts "" (discover) or a plain IPv4 address: NAT-PMP and
// PCP talk to a fixed port and UPnP finds its own through SSDP, so a port
// here would be ignored or wrong. Backend pcp takes the router's IPv6
// address too, where it asks for pinholes (a link-local one with its
// interface, which alone says which link it is on).
func checkAddress(s, backend string) error {
	if s == "" {
		return nil
	}
	a, err := netip.ParseAddr(s)
	switch {
	case err == nil && a.Is4():
		return nil
	case err == nil && backend == "pcp" && a.IsLinkLocalUnicast() && a.Zone() == "":
		return fmt.Errorf("%q is link-local: add the interface it is on, like %s%%eth0", s, s)
	case err == nil && backend == "pcp":
		return nil
	case err == nil:
		return fmt.Errorf("%q is not an IPv4 address; home gateways forward IPv4 (only backend pcp takes the router's IPv6 address, where it asks for pinholes)", s)
	}
	if _, perr := netip.ParseAddrPort(s); perr == nil {
		return fmt.Errorf("%q has a port; give the gateway's plain IPv4 address, like 192.168.1.1", s)
	}
	return fmt.Errorf("%q is not an IPv4 address; give the gateway's address, like 192.168.1.1, or leave it empty to discover it", s)
}

// checkLease rejects negative leases, and leases under a second: every
// gateway protocol counts leases in whole seconds, where it would become 0,
// which means permanent.
func checkLease(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("lease %s is negative; use 0 for a permanent forward", d)
	}
	if d > 0 && d < time.Second {
		return fmt.Errorf("lease %s is under a second; use at least 1s, or 0 for a permanent forward", d)
	}
	return nil
}

// ParseLease reads a Go duration ("1h30m") or a whole number of seconds.
func ParseLease(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > int64(1<<62/time.Second) {
			return 0, fmt.Errorf("lease %s seconds is too long", s)
		}
		d := time.Duration(n) * time.Second
		return d, checkLease(d)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid lease %q: want a duration like 1h or 30m, a number of seconds, or 0 for permanent", s)
	}
	return d, checkLease(d)
}

// gateway reads the gateway: section; every key is optional.
func (l *loader) gateway(n *yaml.Node) GatewaySettings {
	g := GatewaySettings{Backend: "auto", Lease: DefaultLease}
	if isNull(n) {
		return g
	}
	if n.Kind != yaml.MappingNode {
		l.errorf(n.Line, "gateway", "want a mapping (backend:, address:, lease:, wan_interface:, hairpin:), got %s", kindName(n))
		return g
	}
	f := l.fields(n, "gateway", gatewayKeys)
	if l.spent {
		return g
	}
	if s, ok := l.scalar(f["backend"], "gateway.backend"); ok {
		g.Backend = strings.TrimSpace(s)
		l.check(f["backend"], "gateway.backend", checkBackend(g.Backend))
	}
	if s, ok := l.scalar(f["address"], "gateway.address"); ok {
		g.Address = strings.TrimSpace(s)
		l.check(f["address"], "gateway.address", checkAddress(g.Address, g.Backend))
	}
	if s, ok := l.scalar(f["lease"], "gateway.lease"); ok {
		var err error
		g.Lease, err = ParseLease(s)
		l.check(f["lease"], "gateway.lease", err)
	}
	if s, ok := l.scalar(f["wan_interface"], "gateway.wan_interface"); ok {
		g.WANInterface = strings.TrimSpace(s)
		l.check(f["wan_interface"], "gateway.wan_interface", checkInterface(g.WANInterface))
	}
	g.Hairpin, _ = l.boolean(f["hairpin"], "gateway.hairpin")
	return g
}

// check records err, if any, against the value node n.
func (l *loader) check(n *yaml.Node, key string, err error) {
	if err != nil {
		l.errorf(n.Line, key, "%s", err)
	}
}

// ruleInput is a rule while it is being read: the rule, and the nodes its
// keys came from, for the line numbers of later checks.
type ruleInput struct {
	Rule
	path   string
	nodes  map[string]*yaml.Node
	portOK bool // protocols and ports are valid: the rule takes part in overlap checks
	lookup bool // InternalHost is a hostname still to resolve
}

// where returns the line and key path to blame for key: the key itself if
// the rule sets it, else its service (which filled it in), else the rule.
func (r *ruleInput) where(key string) (int, string) {
	for _, k := range []string{key, "service"} {
		if n, ok := r.nodes[k]; ok && n != nil {
			return n.Line, joinKey(r.path, k)
		}
	}
	return r.Line, joinKey(r.path, key)
}

// rules reads the rules: list, then checks the rules against each other and
// resolves their hosts.
func (l *loader) rules(ctx context.Context, n *yaml.Node, rootLine int) []Rule {
	if n == nil {
		l.errorf(rootLine, "", "no rules: key; list the forwards under rules:, or write rules: [] to remove every forward portfwd owns")
		return nil
	}
	if isNull(n) {
		l.errorf(n.Line, "rules", "is empty; list the forwards, or write rules: [] to remove every forward portfwd owns")
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		l.errorf(n.Line, "rules", "want a list of rules, got %s", kindName(n))
		return nil
	}
	if l.tooManyRules(n) {
		return nil
	}
	inputs := make([]*ruleInput, 0, len(n.Content))
	for i, item := range n.Content {
		if r := l.rule(i, item); r != nil {
			inputs = append(inputs, r)
		}
	}
	if l.spent {
		return nil
	}
	l.checkNames(inputs)
	l.checkClaims(inputs)
	l.resolveHosts(ctx, inputs)
	out := make([]Rule, len(inputs))
	for i, r := range inputs {
		l.warnRule(r)
		out[i] = r.Rule
	}
	return out
}

// rule reads one entry of rules:, applying its service and the defaults.
func (l *loader) rule(i int, item *yaml.Node) *ruleInput {
	path := fmt.Sprintf("rules[%d]", i)
	n := deref(item)
	if item.Kind == yaml.AliasNode {
		l.expanding = &blame{item.Line, path}
		defer func() { l.expanding = nil }()
	}
	if n.Kind != yaml.MappingNode {
		l.errorf(n.Line, path, "want a rule (a mapping with name:, protocol:, external_port: ...), got %s", kindName(n))
		return nil
	}
	r := &ruleInput{Rule: Rule{Line: n.Line, InternalHost: "self"}, path: path}
	r.nodes = l.fields(n, path, ruleKeys)
	if l.spent {
		return nil
	}
	r.Name = l.ruleName(r)
	svc, svcOK := l.ruleService(r)
	protoOK := l.ruleProtocols(r, svc, svcOK)
	portOK := l.rulePorts(r, svc, svcOK)
	r.portOK = protoOK && portOK
	l.ruleFamily(r)
	l.ruleHost(r)
	r.Description, _ = l.scalar(r.nodes["description"], joinKey(path, "description"))
	r.Hairpin, _ = l.boolean(r.nodes["hairpin"], joinKey(path, "hairpin"))
	r.Probe = probeFor(r.Protocols, svc)
	l.ruleProbe(r)
	return r
}

// ruleProbe reads probe:, which overrides the probe the service or the
// protocol implies. It must be a known kind that travels over a protocol
// the rule forwards.
func (l *loader) ruleProbe(r *ruleInput) {
	key := joinKey(r.path, "probe")
	s, ok := l.scalar(r.nodes["probe"], key)
	if !ok {
		return
	}
	kind := ProbeKind(strings.ToLower(strings.TrimSpace(s)))
	switch {
	case !kind.Known():
		l.errorf(r.nodes["probe"].Line, key, "unknown probe %q; want one of %s", kind, probeKindList())
	case len(r.Protocols) > 0 && !slices.Contains(r.Protocols, kind.Network()):
		l.errorf(r.nodes["probe"].Line, key, "probe %q speaks %s, but the rule forwards %s", kind, kind.Network(), strings.Join(protocolStrings(r.Protocols), "+"))
	default:
		r.Probe = kind
	}
}

// probeServer reads the probe_server: section; both keys are optional but
// a token needs a url.
func (l *loader) probeServer(n *yaml.Node) ProbeServer {
	var ps ProbeServer
	if isNull(n) {
		return ps
	}
	if n.Kind != yaml.MappingNode {
		l.errorf(n.Line, "probe_server", "want a mapping (url:, token:), got %s", kindName(n))
		return ps
	}
	f := l.fields(n, "probe_server", probeServerKeys)
	if l.spent {
		return ps
	}
	if s, ok := l.scalar(f["url"], "probe_server.url"); ok {
		ps.URL = strings.TrimSpace(s)
		l.check(f["url"], "probe_server.url", CheckProbeServerURL(ps.URL))
	}
	ps.Token, _ = l.scalar(f["token"], "probe_server.token")
	if ps.Token != "" && ps.URL == "" {
		l.errorf(n.Line, "probe_server.url", "a token needs a url")
	}
	return ps
}

// CheckProbeServerURL accepts an absolute http or https URL with a host.
func CheckProbeServerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("invalid probe server URL %q: want http://host:port or https://host:port", s)
	}
	return nil
}

func (l *loader) ruleName(r *ruleInput) string {
	key := joinKey(r.path, "name")
	name, ok := l.scalar(r.nodes["name"], key)
	switch {
	case !ok && isNull(r.nodes["name"]):
		l.errorf(r.Line, key, "name is required: it tags the rule's forwards on the router (pf:<config>:<name>)")
	case !ok:
	case len(name) > maxNameLen:
		l.errorf(r.nodes["name"].Line, key, "name %q is longer than %d characters", name, maxNameLen)
	case !namePattern.MatchString(name):
		l.errorf(r.nodes["name"].Line, key, "invalid name %q: use lower-case letters, digits and hyphens, starting with a letter or digit", name)
	}
	return name
}

// ruleService looks up the rule's service. ok is false when the rule names
// none, or one that is unknown; in the latter case the error is recorded and
// known is false so that keys the service would have filled are not also
// reported missing.
func (l *loader) ruleService(r *ruleInput) (svc Service, known bool) {
	key := joinKey(r.path, "service")
	name, ok := l.scalar(r.nodes["service"], key)
	if !ok {
		return Service{}, !isNull(r.nodes["service"])
	}
	r.Service = name
	svc, found := LookupService(name)
	if !found {
		hint := ""
		if s := suggest(name, serviceNames()); s != "" {
			hint = "; did you mean " + s + "?"
		}
		l.errorf(r.nodes["service"].Line, key, "unknown service %q%s (portfwd services lists them)", name, hint)
		return Service{}, true
	}
	return svc, true
}

// ruleProtocols sets r.Protocols from protocol:, else from the service.
func (l *loader) ruleProtocols(r *ruleInput, svc Service, svcGiven bool) bool {
	key := joinKey(r.path, "protocol")
	s, ok := l.scalar(r.nodes["protocol"], key)
	switch {
	case ok:
		ps, err := parseProtocols(s)
		l.check(r.nodes["protocol"], key, err)
		r.Protocols = ps
		return err == nil
	case r.nodes["protocol"] != nil && !isNull(r.nodes["protocol"]):
		return false // wrong type, reported by scalar
	case svc.Name != "":
		r.Protocols = svc.Protocols
		return true
	case !svcGiven:
		l.errorf(r.Line, key, "protocol is required (tcp, udp or both) unless service: names a catalog entry")
	}
	return false
}

// parseProtocols reads protocol:, where "both" stands for tcp and udp.
func parseProtocols(s string) ([]Protocol, error) {
	if strings.EqualFold(strings.TrimSpace(s), "both") {
		return []Protocol{TCP, UDP}, nil
	}
	p, err := ParseProtocol(s)
	if err != nil {
		hint := ""
		if h := suggest(s, []string{"tcp", "udp", "both"}); h != "" {
			hint = "did you mean " + h + "? "
		}
		return nil, fmt.Errorf("unknown protocol %q (%swant tcp, udp or both)", s, hint)
	}
	return []Protocol{p}, nil
}

// rulePorts sets the external and internal ranges. The internal range
// defaults to the external one, and must have its length: a gateway maps
// port by port, so 2456-2458 -> 3456-3458 is three forwards, and there is no
// way to send three external ports to one internal port.
func (l *loader) rulePorts(r *ruleInput, svc Service, svcGiven bool) bool {
	extKey := joinKey(r.path, "external_port")
	if isAny(r.nodes["external_port"]) {
		return l.ruleAnyPort(r, svc, svcGiven)
	}
	ext, ok := l.portRange(r.nodes["external_port"], extKey)
	switch {
	case ok:
	case r.nodes["external_port"] != nil && !isNull(r.nodes["external_port"]):
		return false // invalid, reported by portRange
	case svc.Name != "":
		ext = svc.Ports
	case !svcGiven:
		l.errorf(r.Line, extKey, "external_port is required (a port like 25565 or a range like 2456-2457) unless service: names a catalog entry")
		return false
	default:
		return false
	}
	r.External, r.Internal = ext, ext
	intKey := joinKey(r.path, "internal_port")
	in, ok := l.portRange(r.nodes["internal_port"], intKey)
	if !ok {
		return isNull(r.nodes["internal_port"])
	}
	if in.Len() != ext.Len() {
		l.errorf(r.nodes["internal_port"].Line, intKey,
			"ranges of unequal length: external_port %s is %d port(s), internal_port %s is %d; ports map one to one",
			ext, ext.Len(), in, in.Len())
		return false
	}
	r.Internal = in
	return true
}

// portRange reads a port or range value. ok is false when the key is absent
// or the value invalid (and then reported).
func (l *loader) portRange(n *yaml.Node, key string) (PortRange, bool) {
	s, ok := l.scalar(n, key)
	if !ok {
		return PortRange{}, false
	}
	pr, err := ParsePortRange(s)
	l.check(n, key, err)
	return pr, err == nil
}

// probeFor picks how to check a rule: the service's own probe when the rule
// still forwards the protocol that probe speaks, else a plain connect (TCP)
// or datagram (UDP) probe.
func probeFor(ps []Protocol, svc Service) ProbeKind {
	if svc.Probe != "" && slices.Contains(ps, svc.Probe.Network()) {
		return svc.Probe
	}
	if slices.Contains(ps, TCP) {
		return ProbeTCP
	}
	if len(ps) > 0 {
		return ProbeUDP
	}
	return ""
}

func protocolStrings(ps []Protocol) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}
