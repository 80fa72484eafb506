package forward

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
)

// hostnamePattern is a DNS name (RFC 1123 labels; "_" tolerated because
// home routers' local DNS hands out names like "my_nas").
var hostnamePattern = regexp.MustCompile(`^([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?$`)

// dottedNumbers catches "192.168.1.300": not an address, and not a name
// anyone meant either.
var dottedNumbers = regexp.MustCompile(`^[0-9.]+$`)

// ruleHost reads internal_host: "self" (the default), an IPv4 literal, or a
// hostname that resolveHosts looks up later.
func (l *loader) ruleHost(r *ruleInput) {
	key := joinKey(r.path, "internal_host")
	s, ok := l.scalar(r.nodes["internal_host"], key)
	if !ok {
		return
	}
	s = strings.TrimSpace(s)
	line := r.nodes["internal_host"].Line
	r.InternalHost = s
	if strings.EqualFold(s, "self") {
		r.InternalHost = "self"
		return
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if err := checkHostAddr(a); err != nil {
			l.errorf(line, key, "internal_host %s %s", s, err)
			return
		}
		r.InternalAddr = a.Unmap()
		return
	}
	if len(s) > 253 || dottedNumbers.MatchString(s) || !hostnamePattern.MatchString(s) {
		l.errorf(line, key, "invalid internal_host %q: want self, an IPv4 address or a hostname", s)
		return
	}
	r.lookup = true
}

// checkHostAddr rejects addresses a gateway cannot forward to.
func checkHostAddr(a netip.Addr) error {
	a = a.Unmap()
	switch {
	case !a.Is4():
		return errors.New("is not IPv4; a home gateway forwards IPv4 ports (for IPv6, open the router's firewall instead)")
	case a.IsLoopback():
		return errors.New("is a loopback address the gateway cannot reach; use internal_host: self for this machine")
	case a.IsUnspecified(), a.IsMulticast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return errors.New("is not a host address")
	}
	return nil
}

// resolveHosts looks up the hostnames of internal_host, each once.
func (l *loader) resolveHosts(ctx context.Context, inputs []*ruleInput) {
	lookup := l.opts.LookupHost
	if lookup == nil {
		lookup = defaultLookup
	}
	type result struct {
		addr netip.Addr
		err  error
	}
	cache := make(map[string]result)
	for _, r := range inputs {
		if !r.lookup {
			continue
		}
		res, done := cache[r.InternalHost]
		if !done {
			res.addr, res.err = lookupIPv4(ctx, lookup, r.InternalHost)
			cache[r.InternalHost] = res
		}
		if res.err != nil {
			l.errorf(r.nodes["internal_host"].Line, joinKey(r.path, "internal_host"), "internal_host %q does not resolve: %v", r.InternalHost, res.err)
			continue
		}
		r.InternalAddr = res.addr
	}
}

// lookupIPv4 resolves host to its first usable IPv4 address.
func lookupIPv4(ctx context.Context, lookup func(context.Context, string) ([]netip.Addr, error), host string) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	addrs, err := lookup(ctx, host)
	if err != nil {
		return netip.Addr{}, err
	}
	var firstErr error
	for _, a := range addrs {
		if !a.Unmap().Is4() {
			continue
		}
		if err := checkHostAddr(a); err != nil {
			firstErr = fmt.Errorf("it resolves to %s, which %w", a.Unmap(), err)
			continue
		}
		return a.Unmap(), nil
	}
	if firstErr != nil {
		return netip.Addr{}, firstErr
	}
	return netip.Addr{}, errors.New("no IPv4 address")
}

// defaultLookup resolves with the system resolver, IPv4 only: the gateway
// forwards to IPv4 LAN hosts.
func defaultLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
}

// checkNames reports rule names used twice: the name is the ownership tag on
// the router, so two rules sharing it would delete each other's forwards.
func (l *loader) checkNames(inputs []*ruleInput) {
	first := make(map[string]int)
	for _, r := range inputs {
		if r.Name == "" {
			continue
		}
		line, key := r.where("name")
		if at, dup := first[r.Name]; dup {
			l.errorf(line, key, "duplicate rule name %q; first used on line %d", r.Name, at)
			continue
		}
		first[r.Name] = line
	}
}
