package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/portfwd/portfwd/forward"
)

// IPv6 pinholes. On IPv6 there is no NAT: the internet reaches the LAN
// host's own global address, and the router's FORWARD chain decides. A
// pinhole is one ACCEPT rule in ip6tables' filter PORTFWD-FORWARD, reached
// by one jump inserted first in FORWARD (as on IPv4), so it is seen
// before the router's own DROP:
//
//	-A PORTFWD-FORWARD -d <host>/128 -i <wan> -p tcp -m tcp --dport 25565
//	                   -m comment --comment pf:<config>:<rule> -j ACCEPT
//
// Nothing is written to ip6tables' nat table, and there is no hairpin: a
// LAN client reaches the host's global address directly.

// pinholeSpec is the ACCEPT rule of pinhole m, for packets arriving on the
// WAN interface wan; in the order `ip6tables -S` prints it back, so a
// listed rule compares equal.
func pinholeSpec(m forward.Mapping, wan string) []string {
	p := string(m.Protocol)
	return []string{"-d", m.InternalHost.String() + "/128", "-i", wan, "-p", p, "-m", p,
		"--dport", strconv.Itoa(int(m.ExternalPort)),
		"-m", "comment", "--comment", m.Description, "-j", "ACCEPT"}
}

// pinholeKey is the mapping key of an ACCEPT rule in ip6tables'
// PORTFWD-FORWARD: its protocol and --dport, on IPv6.
func (r rule) pinholeKey() (forward.Key, bool) {
	if r.target() != "ACCEPT" {
		return forward.Key{}, false
	}
	proto, ok := r.protocol()
	if !ok {
		return forward.Key{}, false
	}
	port, ok := r.port("--dport")
	return forward.Key{Protocol: proto, ExternalPort: port, Family: forward.IPv6}, ok
}

// pinhole reads an ACCEPT rule of portfwd's ip6tables chain as the pinhole
// it opens. ok is false for any rule that is not one port opened to one
// host. Whether it admits packets from the WAN interface is for List to
// decide (pinholesListed).
func (r rule) pinhole() (m forward.Mapping, ok bool) {
	k, ok := r.pinholeKey()
	if !ok || r.hasNegation() {
		return m, false
	}
	d, ok, _ := r.opt("-d")
	if !ok {
		return m, false
	}
	host, ok := parseHost6(d)
	if !ok {
		return m, false
	}
	return forward.Mapping{Key: k, InternalHost: host, InternalPort: k.ExternalPort,
		Description: r.comment(), Enabled: true}, true
}

// parseHost6 reads -d as ip6tables prints one host: "addr/128" (or a bare
// address).
func parseHost6(s string) (netip.Addr, bool) {
	addr, bits, hasBits := strings.Cut(s, "/")
	host, err := netip.ParseAddr(addr)
	if err != nil || forward.FamilyOf(host) != forward.IPv6 || (hasBits && bits != "128") {
		return netip.Addr{}, false
	}
	return host, true
}

// rulesPinhole are the pinholes in ip6tables' PORTFWD-FORWARD; owned6
// lists portfwd's ip6tables chains as owned does its iptables ones.
var (
	rulesPinhole = chainRules{"filter", chainForward, rule.pinholeKey}
	owned6       = []chainRules{rulesPinhole}
)

// pinholesIn are the pinholes in portfwd's ip6tables chain of view v, as
// they are written (Enabled; pinholesListed decides).
func pinholesIn(v *view) []forward.Mapping {
	var out []forward.Mapping
	for _, r := range v.rules("filter", chainForward) {
		if m, ok := r.pinhole(); ok {
			out = append(out, m)
		}
	}
	return out
}

// pinholesListed are the pinholes of v as List reports them: one is
// enabled when the jump is there and its rule is the one Add writes for
// wan, so that a pinhole for another WAN interface (the uplink was
// renamed) is replaced.
func pinholesListed(v *view, wan string) []forward.Mapping {
	live := v.hooked(hookForward, wan)
	out := pinholesIn(v)
	for i, m := range out {
		out[i].Enabled = live && v.has("filter", chainForward, pinholeSpec(m, wan))
	}
	return out
}

// addPinhole writes what pinhole m needs and is not there yet: the chain,
// its jump and the ACCEPT rule.
func (e editor) addPinhole(ctx context.Context, m forward.Mapping) error {
	if err := e.validatePinhole(m); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := e.takeOver(ctx, m, pinholesIn(e.v)); err != nil {
		return err
	}
	if err := e.ensureHooks(ctx, hookForward); err != nil {
		return err
	}
	return e.ensureRule(rulesPinhole, m.Key, pinholeSpec(m, e.f.wan))
}

// errIPv6ForwardingOff explains net.ipv6.conf.all.forwarding=0. portfwd
// does not switch it on: on a router that takes its WAN address from
// router advertisements, forwarding on makes the kernel ignore them
// (accept_ra=1), and the uplink would lose its IPv6 address.
var errIPv6ForwardingOff = errors.New("IPv6 forwarding is off (net.ipv6.conf.all.forwarding=0), so the router forwards no IPv6 and a pinhole lets nothing in: " +
	"turn it on the way your distribution configures IPv6 routing (sysctl -w net.ipv6.conf.all.forwarding=1, and accept_ra=2 on the WAN interface if it takes its address from router advertisements)")

// validatePinhole refuses what an ip6tables pinhole here cannot say, and
// pinholes on a router that forwards no IPv6.
func (e editor) validatePinhole(m forward.Mapping) error {
	if _, err := forward.ParseProtocol(string(m.Protocol)); err != nil {
		return err
	}
	if forward.FamilyOf(m.InternalHost) != forward.IPv6 || !m.InternalHost.IsGlobalUnicast() {
		return fmt.Errorf("%v: an IPv6 pinhole opens a LAN host's global IPv6 address; internal_host must be one", m)
	}
	if m.ExternalPort == 0 || m.ExternalPort != m.InternalPort {
		return fmt.Errorf("%v: an IPv6 pinhole opens one port on the host itself (no port translation on IPv6)", m)
	}
	if b, err := e.f.sys.readFile(ipv6ForwardPath); err == nil && strings.TrimSpace(string(b)) == "0" {
		return errIPv6ForwardingOff
	}
	return validateTag(m)
}
