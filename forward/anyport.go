package forward

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// anyPort is the external_port value that takes whatever port the gateway
// grants.
const anyPort = "any"

// isAny reports whether n is the scalar "any", in any case.
func isAny(n *yaml.Node) bool {
	n = deref(n)
	return n != nil && n.Kind == yaml.ScalarNode && strings.EqualFold(strings.TrimSpace(n.Value), anyPort)
}

// ruleAnyPort reads a rule with external_port: any. It forwards one port:
// the internal one, from internal_port or else the service, which is also
// the external port suggested to the gateway. A range cannot be "any":
// the gateway would grant its ports scattered, and a range is useful only
// contiguous.
func (l *loader) ruleAnyPort(r *ruleInput, svc Service, svcGiven bool) bool {
	extNode := deref(r.nodes["external_port"])
	extKey := joinKey(r.path, "external_port")
	r.AnyExternal = true
	in, ok := l.portRange(r.nodes["internal_port"], joinKey(r.path, "internal_port"))
	switch {
	case ok:
	case !isNull(r.nodes["internal_port"]):
		return false // invalid, reported by portRange
	case svc.Name != "":
		in = svc.Ports
	case svcGiven:
		return false // unknown service, already reported
	default:
		l.errorf(extNode.Line, extKey, "external_port: any needs internal_port, the port the service listens on (it is also the external port asked for first)")
		return false
	}
	if in.Len() != 1 {
		l.errorf(extNode.Line, extKey, "external_port: any takes a single port, but the internal port is the range %s; give fixed ports, or one rule per port", in)
		return false
	}
	r.External, r.Internal = in, in
	return true
}
