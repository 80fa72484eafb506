package probe

import (
	"net/netip"
	"testing"

	"github.com/portfwd/portfwd/forward"
)

func TestResolveGranted(t *testing.T) {
	host := netip.MustParseAddr("192.168.1.10")
	mapping := func(ext, in uint16, desc string) forward.Mapping {
		return forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: ext}, InternalHost: host,
			InternalPort: in, Description: desc, Enabled: true}
	}
	env := &survey{mappings: map[forward.Key]forward.Mapping{}}
	for _, m := range []forward.Mapping{mapping(25565, 25570, "other"), mapping(25567, 25565, "portfwd:mc"), mapping(25566, 25565, "portfwd:web")} {
		env.mappings[m.Key] = m
	}
	target := func(rule string, any bool) Target {
		return Target{Rule: rule, Tag: (forward.LegacyTagPrefix + rule), Kind: TCP, External: forward.Key{Protocol: forward.TCP, ExternalPort: 25565},
			Internal: netip.AddrPortFrom(host, 25565), AnyExternal: any}
	}
	targets := []Target{target("mc", true), target("mc", false), target("gone", true)}
	got := env.resolveGranted(targets)
	for i, want := range []uint16{25567, 25565, 25565} {
		if got[i].External.ExternalPort != want {
			t.Errorf("target %d on %v, want port %d", i, got[i].External, want)
		}
	}
	if targets[0].External.ExternalPort != 25565 {
		t.Error("resolveGranted changed its input")
	}
}
