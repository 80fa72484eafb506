package probe

import (
	"net/netip"

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
		kind := Kind(r.Probe)
		offset := uint16(0)
		if kind == A2S && r.External.Len() > 1 {
			offset = 1
		}
		host, isSelf := r.InternalAddr, false
		if !host.IsValid() {
			host, isSelf = self, true
		}
		out = append(out, Target{
			Rule:     r.Name,
			Kind:     kind,
			External: forward.Key{Protocol: kind.Network(), ExternalPort: r.External.First + offset},
			Internal: netip.AddrPortFrom(host, r.Internal.First+offset),
			Self:     isSelf,
		})
	}
	return out
}
