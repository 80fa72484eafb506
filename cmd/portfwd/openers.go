package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/portfwd/portfwd/firewall"
	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/upnp"
	"github.com/portfwd/portfwd/upnp/pcp"
)

// openOptions is what the openers need to know of a run.
type openOptions struct {
	Gateway    forward.GatewaySettings
	StateDir   string // where NAT-PMP and PCP keep their records, and UPnP its pinholes
	Rediscover bool   // UPnP: ignore the remembered gateway
	// Inspect: the command only reads, or removes (plan, status, check,
	// down), so a router that could not forward yet is a warning.
	Inspect bool
	// EnableForwarding: the iptables backend turns IPv4 forwarding on
	// instead of failing (apply and daemon --enable-forwarding).
	EnableForwarding bool
	// Warn receives what an opener found wrong that did not stop it.
	Warn func(string)
	// Timeout is --timeout: how long the gateway may take to answer one
	// request (UPnP discovery, each SOAP request, each NAT-PMP or PCP
	// exchange), each on its own.
	Timeout time.Duration
}

// defaultOpeners are the backends of this build, in order of preference
// for auto detection: UPnP lists every mapping on the router, so conflicts
// with other programs are seen before they happen; PCP and NAT-PMP only
// know what portfwd made, and PCP is NAT-PMP's successor. iptables runs on
// the router itself and is never detected: it must be chosen. This is the
// one place that names concrete backends.
func defaultOpeners(o openOptions) []forward.Opener {
	return []forward.Opener{
		{Name: "upnp", Detect: true, Open: o.openUPnP, Wait: o.Timeout},
		{Name: "pcp", Detect: true, Wait: o.Timeout, Open: o.openPCP},
		{Name: "natpmp", Detect: true, Wait: o.Timeout, Open: func(ctx context.Context, trial bool) (forward.Backend, error) {
			return o.openRecorded(ctx, trial, pcp.OpenNATPMP)
		}},
		{Name: "iptables", Open: o.openIptables},
	}
}

// openUPnP discovers the IGD, or takes the one remembered from the last
// run, so a re-apply skips discovery; without a cache directory every run
// discovers.
func (o openOptions) openUPnP(ctx context.Context, _ bool) (forward.Backend, error) {
	opts := upnp.DiscoverOptions{Refresh: o.Rediscover, CacheDir: cacheDir(), StateDir: o.StateDir, Timeout: o.Timeout, RequestTimeout: o.Timeout}
	addr, err := gatewayAddress(o.Gateway)
	if err != nil {
		return nil, err
	}
	opts.Gateway = addr
	return upnp.Discover(ctx, opts)
}

// cacheDir is where portfwd remembers gateways between runs
// (~/.cache/portfwd), or "" when the system has no cache directory.
func cacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "portfwd")
}

// detectMemory is where auto detection remembers which protocol the
// gateway o names answered: beside the UPnP discovery cache, keyed the
// same way (upnp.GatewayKey), and with --rediscover recalling nothing.
// Without a cache directory or a gateway address every run asks every
// protocol. The key is looked up only when detection uses the memory.
func detectMemory(o openOptions) forward.Memory {
	dir := cacheDir()
	if dir == "" {
		return nil
	}
	key := func() string {
		gw, err := o.defaultGateway()
		if err != nil {
			return ""
		}
		return upnp.GatewayKey(gw)
	}
	return &forward.DetectionFiles{Dir: dir, Key: key, Refresh: o.Rediscover}
}

// openRecorded opens NAT-PMP or PCP, which cannot list mappings and
// answer List from portfwd's records: on trial from records in memory,
// else from the records file in the state directory.
func (o openOptions) openRecorded(ctx context.Context, trial bool,
	open func(context.Context, netip.Addr, *pcp.Records, pcp.Options) (*pcp.Backend, error)) (forward.Backend, error) {
	gw, err := o.defaultGateway()
	if err != nil {
		return nil, err
	}
	rec := pcp.MemoryRecords()
	if !trial {
		if rec, err = pcp.OpenRecords(o.StateDir); err != nil {
			return nil, err
		}
		for _, w := range rec.Warnings() {
			o.warn(w)
		}
	}
	b, err := open(ctx, gw, rec, pcp.Options{Timeout: o.Timeout})
	if err != nil {
		return nil, err // not a nil *pcp.Backend in a non-nil interface
	}
	return b, nil
}

// openPCP opens PCP. A gateway.address on IPv6 names the router's PCP
// server for pinholes (pcp.Options.Gateway6), and the forwards are asked
// of the IPv4 default gateway; otherwise the pinholes go to the IPv6
// default route's gateway.
func (o openOptions) openPCP(ctx context.Context, trial bool) (forward.Backend, error) {
	given, err := gatewayAddress(o.Gateway)
	if err != nil || forward.FamilyOf(given) != forward.IPv6 {
		return o.openRecorded(ctx, trial, pcp.OpenPCP)
	}
	v4 := o
	v4.Gateway.Address = ""
	return v4.openRecorded(ctx, trial, func(ctx context.Context, gw netip.Addr, rec *pcp.Records, opts pcp.Options) (*pcp.Backend, error) {
		opts.Gateway6 = given
		return pcp.OpenPCP(ctx, gw, rec, opts)
	})
}

// openIptables writes the forwards with iptables on this machine, the
// router.
func (o openOptions) openIptables(context.Context, bool) (forward.Backend, error) {
	f, err := firewall.New(firewall.Options{WANInterface: o.Gateway.WANInterface,
		EnableForwarding: o.EnableForwarding, Inspect: o.Inspect})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// defaultGateway is gateway.address, or this host's default gateway.
func (o openOptions) defaultGateway() (netip.Addr, error) {
	given, err := gatewayAddress(o.Gateway)
	if err != nil {
		return netip.Addr{}, err
	}
	addr, err := upnp.GatewayAddr(given)
	if err != nil {
		return netip.Addr{}, forward.NoGateway(fmt.Errorf("this host has no default gateway to ask (%v); set gateway.address (or --gateway) to the router's LAN address", err))
	}
	return addr, nil
}

func (o openOptions) warn(w string) {
	if o.Warn != nil {
		o.Warn(w)
	}
}

// gatewayAddress is gateway.address, or the zero Addr for "find it".
func gatewayAddress(gw forward.GatewaySettings) (netip.Addr, error) {
	if gw.Address == "" {
		return netip.Addr{}, nil
	}
	addr, err := netip.ParseAddr(gw.Address)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("gateway.address %q: %w", gw.Address, err)
	}
	return addr, nil
}
