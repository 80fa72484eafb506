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

// ruleHost reads internal_host: "self" (the default), an IP literal of the
// rule's family, or a hostname that resolveHosts looks up later (for a
// dual rule, both its IPv4 and its IPv6 address). A literal cannot serve a
// dual rule, which needs one address of each family.
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
		l.hostLiteral(r, a.Unmap(), line, key)
		return
	}
	if len(s) > 253 || dottedNumbers.MatchString(s) || !hostnamePattern.MatchString(s) {
		l.errorf(line, key, "invalid internal_host %q: want self, an IP address or a hostname", s)
		return
	}
	r.lookup = true
}

// hostLiteral takes an address written as internal_host, if it is one the
// rule's family can open.
func (l *loader) hostLiteral(r *ruleInput, a netip.Addr, line int, key string) {
	switch {
	case r.opensIPv4() && r.opensIPv6():
		l.errorf(line, key, "internal_host %s is one address, but family: dual opens an IPv4 forward and an IPv6 pinhole: use self, a hostname with both addresses, or two rules (family: ipv4 and family: ipv6)", a)
	case a.Is4() && r.opensIPv6():
		l.errorf(line, key, "internal_host %s is IPv4, but the rule is family: ipv6: give the host's global IPv6 address, or family: ipv4", a)
	case a.Is6() && r.opensIPv4():
		l.errorf(line, key, "internal_host %s is IPv6: a gateway forwards IPv4 ports to IPv4 hosts; for a pinhole to this IPv6 address set family: ipv6", a)
	default:
		if err := checkHostAddr(a); err != nil {
			l.errorf(line, key, "internal_host %s %s", a, err)
			return
		}
		r.setAddr(a)
	}
}

// setAddr records a resolved address in the field of its family.
func (r *ruleInput) setAddr(a netip.Addr) {
	if FamilyOf(a) == IPv6 {
		r.InternalAddr6 = a
		return
	}
	r.InternalAddr = a
}

// checkHostAddr rejects addresses a gateway cannot forward to, or open a
// pinhole to: an IPv6 one must be global, since the internet cannot reach
// a link-local or unique local address.
func checkHostAddr(a netip.Addr) error {
	a = a.Unmap()
	switch {
	case a.Is6() && (a.IsLinkLocalUnicast() || a.IsPrivate()):
		return errors.New("is a link-local or unique local IPv6 address the internet cannot reach; give the host's global IPv6 address (or self)")
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
		addrs []netip.Addr
		err   error
	}
	cache := make(map[string]result)
	for _, r := range inputs {
		if !r.lookup {
			continue
		}
		res, done := cache[r.InternalHost]
		if !done {
			res.addrs, res.err = lookupAddrs(ctx, lookup, r.InternalHost)
			cache[r.InternalHost] = res
		}
		for _, f := range r.families() {
			a, err := usableOf(res.addrs, res.err, f)
			if err != nil {
				l.errorf(r.nodes["internal_host"].Line, joinKey(r.path, "internal_host"), "internal_host %q does not resolve: %v", r.InternalHost, err)
				break
			}
			r.setAddr(a)
		}
	}
}

// lookupAddrs resolves host within lookupTimeout.
func lookupAddrs(ctx context.Context, lookup func(context.Context, string) ([]netip.Addr, error), host string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	return lookup(ctx, host)
}

// usableOf is the first usable address of family f a lookup gave.
func usableOf(addrs []netip.Addr, err error, f Family) (netip.Addr, error) {
	if err != nil {
		return netip.Addr{}, err
	}
	var firstErr error
	for _, a := range addrs {
		if a = a.Unmap(); FamilyOf(a) != f {
			continue
		}
		if err := checkHostAddr(a); err != nil {
			firstErr = fmt.Errorf("it resolves to %s, which %w", a, err)
			continue
		}
		return a, nil
	}
	if firstErr != nil {
		return netip.Addr{}, firstErr
	}
	if f == IPv6 {
		return netip.Addr{}, errors.New("no IPv6 address (a pinhole needs the host's global IPv6 address)")
	}
	return netip.Addr{}, errors.New("no IPv4 address")
}

// defaultLookup resolves with the system resolver, both families: each
// rule takes the address of the family it opens.
func defaultLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
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
