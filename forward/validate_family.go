package forward

import (
	"slices"
	"strings"
)

// Family names as the config's family: key spells them. "dual" is both.
const (
	familyIPv4 = "ipv4"
	familyIPv6 = "ipv6"
	familyDual = "dual"
)

// ruleFamily reads family: ipv4 (the default), ipv6 or dual. An IPv6
// pinhole has no NAT, so it cannot send one external port to another
// internal port: such a rule is refused with the way out.
func (l *loader) ruleFamily(r *ruleInput) {
	r.Families = []Family{IPv4}
	key := joinKey(r.path, "family")
	s, ok := l.scalar(r.nodes["family"], key)
	if !ok {
		return
	}
	line := r.nodes["family"].Line
	switch strings.ToLower(strings.TrimSpace(s)) {
	case familyIPv4:
	case familyIPv6:
		r.Families = []Family{IPv6}
	case familyDual:
		r.Families = []Family{IPv4, IPv6}
	default:
		l.errorf(line, key, "unknown family %q; want ipv4 (the default), ipv6 (open a pinhole to this host's IPv6 address) or dual (both)", s)
		return
	}
	if r.opensIPv6() && !r.AnyExternal && r.portOK && r.External.First != r.Internal.First {
		l.errorf(line, key, "IPv6 has no port translation: a pinhole opens the internal port itself, so external_port (%s) must equal internal_port (%s) on family %s; or keep family: ipv4", r.External, r.Internal, s)
	}
}

// opensIPv6 reports whether the rule opens an IPv6 pinhole.
func (r *Rule) opensIPv6() bool { return slices.Contains(r.families(), IPv6) }

// opensIPv4 reports whether the rule makes an IPv4 forward.
func (r *Rule) opensIPv4() bool { return slices.Contains(r.families(), IPv4) }
