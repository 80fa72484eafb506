package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/coreos/go-iptables/iptables"

	"github.com/portfwd/portfwd/forward"
)

// Options configures New.
type Options struct {
	// WANInterface is the interface the forwards arrive on; "" means the
	// interface of the default route (/proc/net/route).
	WANInterface string
	// EnableForwarding turns on net.ipv4.ip_forward when it is off, instead
	// of failing.
	EnableForwarding bool
	// Inspect is for commands that only read (status, plan): IPv4
	// forwarding being off is then one of Warnings, not an error.
	Inspect bool
}

// Firewall is a forward.Backend writing DNAT and ACCEPT rules with
// iptables on the router portfwd runs on.
type Firewall struct {
	t4       tables  // iptables: IPv4 forwards
	t6       *tables // ip6tables: IPv6 pinholes; nil when New could not use it
	no6      error   // why t6 is nil
	wan      string
	flavour  string
	sys      system
	warnings []string

	mu    sync.Mutex // guards the views and notes
	notes []string   // what a pass learnt for Warnings, until they are read
}

var (
	_ forward.Backend     = (*Firewall)(nil)
	_ forward.Batcher     = (*Firewall)(nil)
	_ forward.HostChecker = (*Firewall)(nil)
)

// New checks that this host can forward ports with iptables (root, an
// iptables binary, IPv4 forwarding on, the WAN interface present) and
// returns the backend. With an ip6tables of the same flavour it opens IPv6
// pinholes too (Properties.IPv6). It writes nothing to iptables.
func New(opts Options) (*Firewall, error) {
	sys := hostSystem()
	wan, warnings, notes, err := checkHost(opts, sys)
	if err != nil {
		return nil, err
	}
	t, err := iptables.New()
	if err != nil {
		return nil, fmt.Errorf("starting iptables: %w; install the iptables package", err)
	}
	f := newFirewall(withTableLister(t, sys, "iptables"), wan, sys.flavour("iptables"), sys)
	f.warnings, f.notes = warnings, notes
	if path := restoreBinary(sys, "iptables"); path != "" {
		f.t4.restore = restoreCmd{path: path, name: "iptables-restore"}
	}
	f.t6, f.no6 = newTables6(sys, f.flavour)
	return f, nil
}

// newFirewall is the IPv4 side alone over t; New adds the IPv6 side.
func newFirewall(t ipt, wan, flavour string, sys system) *Firewall {
	return &Firewall{t4: tables{family: forward.IPv4, ipt: t}, wan: wan, flavour: flavour, sys: sys,
		no6: errors.New("no ip6tables")}
}

// Flavour is the iptables variant in use, "nf_tables" or "legacy" (from
// `iptables --version`), or "" when it could not be told. Rules written by
// one are invisible to the other.
func (f *Firewall) Flavour() string { return f.flavour }

// Warnings are what New found wrong with the host that did not stop it
// (with Options.Inspect: forwarding off), every time, and what a pass
// learnt since the last call (an iptables-restore that failed), once.
func (f *Firewall) Warnings() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := append(slices.Clone(f.warnings), f.notes...)
	f.notes = nil
	return out
}

// commands are the iptables variants in use by the names of their
// commands: "iptables-nft", "iptables-legacy", or "iptables" when it could
// not be told; and the same of ip6tables when the IPv6 side is on.
func (f *Firewall) commands() []string {
	suffix := map[string]string{"nf_tables": "-nft", "legacy": "-legacy"}[f.flavour]
	var out []string
	for _, t := range f.sides() {
		out = append(out, t.cmd()+suffix)
	}
	return out
}

// Properties implements forward.Backend. iptables rules have no lease,
// may point at any LAN host, and belong to the one portfwd on this router;
// IPv6 pinholes are opened when ip6tables of the same flavour is there.
func (f *Firewall) Properties() forward.Properties {
	return forward.Properties{
		Name:            "iptables",
		Gateway:         "iptables://localhost/" + f.wan,
		Protocols:       f.commands(),
		PermanentLeases: true,
		ThirdParty:      forward.ThirdPartyYes,
		Local:           true,
		Hairpin:         true,
		IPv6:            f.t6 != nil,
	}
}

// ExternalAddr implements forward.Backend: the first global unicast IPv4
// address on the WAN interface.
func (f *Firewall) ExternalAddr(ctx context.Context) (netip.Addr, error) {
	if err := ctx.Err(); err != nil {
		return netip.Addr{}, err
	}
	ps, err := f.prefixes(func(iface string, p netip.Prefix) bool {
		return iface == f.wan && p.Addr().Is4() && p.Addr().IsGlobalUnicast()
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("reading the addresses of WAN interface %s: %w", f.wan, err)
	}
	if len(ps) == 0 {
		return netip.Addr{}, fmt.Errorf("WAN interface %s has no IPv4 address; bring the uplink up or pass the right WAN interface", f.wan)
	}
	return ps[0].Addr(), nil
}

// LocalAddr is the router's own address on its LAN side, what
// internal_host: self stands for: the first IPv4 address of an interface
// other than the WAN one and loopback. The zero Addr when there is none.
func (f *Firewall) LocalAddr() netip.Addr {
	ps, _ := f.prefixes(func(iface string, p netip.Prefix) bool {
		return f.lanSide(iface, p) && !p.Addr().IsLinkLocalUnicast()
	})
	if len(ps) == 0 {
		return netip.Addr{}
	}
	return ps[0].Addr()
}

// lanPrefixes are the IPv4 subnets of the router's interfaces other than
// the WAN one: where a hairpin client and the host it reaches may share a
// subnet.
func (f *Firewall) lanPrefixes() ([]netip.Prefix, error) {
	ps, err := f.prefixes(f.lanSide)
	for i, p := range ps {
		ps[i] = p.Masked()
	}
	return ps, err
}

// lanSide reports an IPv4 address of an interface other than the WAN one
// and loopback.
func (f *Firewall) lanSide(iface string, p netip.Prefix) bool {
	return iface != f.wan && p.Addr().Is4() && !p.Addr().IsLoopback()
}

// prefixes are the addresses of this host's interfaces that keep accepts,
// in interface order.
func (f *Firewall) prefixes(keep func(iface string, p netip.Prefix) bool) ([]netip.Prefix, error) {
	ifs, err := f.sys.interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing network interfaces: %w", err)
	}
	var out []netip.Prefix
	for _, ifi := range ifs {
		for _, p := range ifi.addrs {
			if keep(ifi.name, p) {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// subnetOf is the prefix among lans holding host; ok is false for a host
// the router reaches through another router, whose clients never share
// its subnet.
func subnetOf(lans []netip.Prefix, host netip.Addr) (netip.Prefix, bool) {
	for _, p := range lans {
		if p.Contains(host) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}
