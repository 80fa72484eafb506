package probe

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/portfwd/portfwd/forward"
)

// Targets turns a config's rules into what to check: one target per rule,
// on the first port of its range, with the rule's probe. self is this
// machine's LAN address ("self" in the config).
//
// A Source-engine query (a2s) on a range goes to the range's second port:
// Valheim, V Rising and Enshrouded answer A2S on the game port + 1.
func Targets(cfg *forward.Config, self netip.Addr) []Target {
	var out []Target
	for _, r := range cfg.Rules {
		kind := r.Probe
		offset := uint16(0)
		if kind == A2S && r.External.Len() > 1 {
			offset = 1
		}
		host, isSelf := r.InternalAddr, false
		if !host.IsValid() {
			host, isSelf = self, true
		}
		out = append(out, Target{
			Rule:        r.Name,
			Tag:         forward.Tag(cfg.Name, r.Name),
			Kind:        kind,
			External:    forward.Key{Protocol: kind.Network(), ExternalPort: r.External.First + offset},
			Internal:    netip.AddrPortFrom(host, r.Internal.First+offset),
			Self:        isSelf,
			AnyExternal: r.AnyExternal,
		})
	}
	return out
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
