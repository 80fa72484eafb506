package firewall

import (
	"context"
	"fmt"
	"net"
	"net/netip"
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
}

// Firewall is a forward.Backend writing DNAT and ACCEPT rules with
// iptables on the router portfwd runs on.
type Firewall struct {
	ipt     ipt
	wan     string
	flavour string
	sys     system

	mu sync.Mutex
}

var _ forward.Backend = (*Firewall)(nil)

// New checks that this host can forward ports with iptables (root, an
// iptables binary, IPv4 forwarding on, the WAN interface present) and
// returns the backend. It writes nothing to iptables.
func New(opts Options) (*Firewall, error) {
	sys := hostSystem()
	wan, err := checkHost(opts, sys)
	if err != nil {
		return nil, err
	}
	t, err := iptables.New()
	if err != nil {
		return nil, fmt.Errorf("starting iptables: %w; install the iptables package", err)
	}
	return newFirewall(t, wan, sys.flavour(), sys), nil
}

func newFirewall(t ipt, wan, flavour string, sys system) *Firewall {
	return &Firewall{ipt: t, wan: wan, flavour: flavour, sys: sys}
}

// WANInterface is the interface forwards are accepted on.
func (f *Firewall) WANInterface() string { return f.wan }

// Flavour is the iptables variant in use, "nf_tables" or "legacy" (from
// `iptables --version`), or "" when it could not be told. Rules written by
// one are invisible to the other.
func (f *Firewall) Flavour() string { return f.flavour }

// Properties implements forward.Backend. iptables rules have no lease and
// may point at any LAN host.
func (f *Firewall) Properties() forward.Properties {
	proto := "iptables"
	if f.flavour != "" {
		proto += " (" + f.flavour + ")"
	}
	return forward.Properties{
		Name:            "iptables",
		Gateway:         "iptables://localhost/" + f.wan,
		Protocols:       []string{proto},
		PermanentLeases: true,
		ThirdParty:      true,
	}
}

// ExternalAddr implements forward.Backend: the first global unicast IPv4
// address on the WAN interface.
func (f *Firewall) ExternalAddr(ctx context.Context) (netip.Addr, error) {
	if err := ctx.Err(); err != nil {
		return netip.Addr{}, err
	}
	addrs, err := f.sys.interfaceAddrs(f.wan)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("reading the addresses of WAN interface %s: %w", f.wan, err)
	}
	for _, a := range addrs {
		if ip, ok := addrOf(a); ok && ip.Is4() && ip.IsGlobalUnicast() {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("WAN interface %s has no IPv4 address; bring the uplink up or pass the right WAN interface", f.wan)
}

// addrOf reads an address of net.Interface.Addrs.
func addrOf(a net.Addr) (netip.Addr, bool) {
	switch v := a.(type) {
	case *net.IPNet:
		ip, ok := netip.AddrFromSlice(v.IP)
		return ip.Unmap(), ok
	case *net.IPAddr:
		ip, ok := netip.AddrFromSlice(v.IP)
		return ip.Unmap(), ok
	}
	return netip.Addr{}, false
}
