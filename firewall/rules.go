package firewall

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/portfwd/portfwd/forward"
)

// dnatSpec is the DNAT rule of m, in PORTFWD-PREROUTING and, for a hairpin
// mapping, in PORTFWD-HAIRPIN too; in the order `iptables -S` prints it
// back, so a listed rule compares equal.
func dnatSpec(m forward.Mapping) []string {
	p := string(m.Protocol)
	return []string{"-p", p, "-m", p, "--dport", strconv.Itoa(int(m.ExternalPort)),
		"-m", "comment", "--comment", m.Description,
		"-j", "DNAT", "--to-destination", fmt.Sprintf("%s:%d", m.InternalHost, m.InternalPort)}
}

// acceptSpec is the ACCEPT rule of m in PORTFWD-FORWARD. It matches the
// original destination port too (conntrack --ctorigdstport), so two
// mappings to one internal port each have their own rule.
func acceptSpec(m forward.Mapping) []string {
	p := string(m.Protocol)
	return []string{"-d", m.InternalHost.String() + "/32", "-p", p, "-m", p,
		"--dport", strconv.Itoa(int(m.InternalPort)),
		"-m", "conntrack", "--ctstate", "DNAT", "--ctorigdstport", strconv.Itoa(int(m.ExternalPort)),
		"-m", "comment", "--comment", m.Description, "-j", "ACCEPT"}
}

// snatSpec is the MASQUERADE rule of a hairpin mapping in
// PORTFWD-POSTROUTING, for clients on lan, the internal host's own subnet.
// Without it the host would answer such a client directly, from its own
// address, and the client would drop the answer: it spoke to the public
// address. Masquerading makes the answer come back through the router.
// Connections from the internet keep their source address (-s lan).
func snatSpec(m forward.Mapping, lan netip.Prefix) []string {
	p := string(m.Protocol)
	return []string{"-s", lan.String(), "-d", m.InternalHost.String() + "/32", "-p", p, "-m", p,
		"--dport", strconv.Itoa(int(m.InternalPort)),
		"-m", "conntrack", "--ctstate", "DNAT", "--ctorigdstport", strconv.Itoa(int(m.ExternalPort)),
		"-m", "comment", "--comment", m.Description, "-j", "MASQUERADE"}
}

// ctKey is the mapping key of an ACCEPT or MASQUERADE rule written by
// acceptSpec or snatSpec: its protocol and the original destination port.
func (r rule) ctKey(target string) (forward.Key, bool) {
	if r.target() != target {
		return forward.Key{}, false
	}
	proto, ok := r.protocol()
	if !ok {
		return forward.Key{}, false
	}
	port, ok := r.port("--ctorigdstport")
	return forward.Key{Protocol: proto, ExternalPort: port}, ok
}

// acceptKey is the mapping key of an ACCEPT rule in PORTFWD-FORWARD.
func (r rule) acceptKey() (forward.Key, bool) { return r.ctKey("ACCEPT") }

// snatKey is the mapping key of a MASQUERADE rule in PORTFWD-POSTROUTING.
func (r rule) snatKey() (forward.Key, bool) { return r.ctKey("MASQUERADE") }

// dnatKey is the mapping key of a DNAT rule.
func (r rule) dnatKey() (forward.Key, bool) {
	m, ok := r.mapping()
	return m.Key, ok
}

// chainRules tells the rules of one of portfwd's chains that belong to a
// mapping's key.
type chainRules struct {
	table, chain string
	key          func(rule) (forward.Key, bool)
}

// portfwd's chains, and how each rule in them names its mapping.
var (
	rulesDNAT    = chainRules{"nat", chainDNAT, rule.dnatKey}
	rulesHairpin = chainRules{"nat", chainHairpin, rule.dnatKey}
	rulesSNAT    = chainRules{"nat", chainSNAT, rule.snatKey}
	rulesAccept  = chainRules{"filter", chainForward, rule.acceptKey}
)

// owned lists portfwd's chains in the order Delete empties them of a
// mapping: DNAT first, so no packet is rewritten toward a closed FORWARD.
var owned = []chainRules{rulesDNAT, rulesHairpin, rulesSNAT, rulesAccept}
