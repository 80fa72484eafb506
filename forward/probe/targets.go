package probe

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/portfwd/portfwd/forward"
)

// Targets turns a config's rules into what to check: one target per rule
// and address family, on the first port of its range, with the rule's
// probe. hosts are what self stands for: this machine's LAN address, and
// its stable global IPv6 address for IPv6 (invalid when it has none, which
// the local layer then says). An IPv6 target is the rule's pinhole: no
// NAT, so its key is the internal port, at the server's own address.
//
// A Source-engine query (a2s) on a range goes to the range's second port:
// Valheim, V Rising and Enshrouded answer A2S on the game port + 1.
func Targets(cfg *forward.Config, hosts forward.Hosts) []Target {
	var out []Target
	for _, r := range cfg.Rules {
		families := r.Families
		if len(families) == 0 {
			families = []forward.Family{forward.IPv4}
		}
		for _, f := range families {
			out = append(out, target(cfg, r, f, hosts))
		}
	}
	return out
}

// target is r's target in family f.
func target(cfg *forward.Config, r forward.Rule, f forward.Family, hosts forward.Hosts) Target {
	kind := r.Probe
	offset := uint16(0)
	if kind == A2S && r.External.Len() > 1 {
		offset = 1
	}
	host, self := r.InternalAddr, hosts.Self
	external := r.External.First + offset
	if f == forward.IPv6 {
		host, self, external = r.InternalAddr6, hosts.Self6, r.Internal.First+offset
	}
	isSelf := !host.IsValid()
	if isSelf {
		host = self
	}
	return Target{
		Rule:        r.Name,
		Tag:         forward.Tag(cfg.Name, r.Name),
		Kind:        kind,
		External:    forward.Key{Protocol: kind.Network(), ExternalPort: external, Family: f},
		Internal:    netip.AddrPortFrom(host, r.Internal.First+offset),
		Self:        isSelf,
		AnyExternal: r.AnyExternal && f == forward.IPv4,
	}
}

// resolveGranted points each AnyExternal target at the external port the
// gateway granted its rule: the owned mapping with the rule's tag,
// protocol and internal side, on the suggested port if it is there, else
// on the lowest port. Without one the target keeps the suggested port, and
// the mapping layer reports it missing.
func (env *survey) resolveGranted(targets []Target) []Target {
	out := slices.Clone(targets)
	keys := slices.SortedFunc(maps.Keys(env.mappings), forward.Key.Compare)
	for i, t := range out {
		if !t.AnyExternal || env.servesTarget(t.External, t) {
			continue
		}
		for _, k := range keys {
			if env.servesTarget(k, t) {
				out[i].External = k
				break
			}
		}
	}
	return out
}

// servesTarget reports whether the mapping on k is t's rule's.
func (env *survey) servesTarget(k forward.Key, t Target) bool {
	m, ok := env.mappings[k]
	return ok && m.Protocol == t.External.Protocol && forward.SameDescription(m.Description, t.Tag) &&
		m.InternalHost == t.Internal.Addr() && m.InternalPort == t.Internal.Port()
}
