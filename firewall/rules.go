package firewall

import (
	"fmt"
	"strconv"

	"github.com/portfwd/portfwd/forward"
)

// dnatSpec is the DNAT rule of m in PORTFWD-PREROUTING, in the order
// `iptables -S` prints it back, so a listed rule compares equal.
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

// acceptKey is the mapping key an ACCEPT rule written by acceptSpec
// belongs to.
func (r rule) acceptKey() (forward.Key, bool) {
	if r.target() != "ACCEPT" {
		return forward.Key{}, false
	}
	proto, ok := r.protocol()
	if !ok {
		return forward.Key{}, false
	}
	port, ok := r.port("--ctorigdstport")
	return forward.Key{Protocol: proto, ExternalPort: port}, ok
}
