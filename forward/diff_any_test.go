package forward_test

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// anyMC is the desired mapping of external_port: any with internal port
// 25565: the suggested external port is the internal one.
func anyMC() forward.Mapping {
	m := mapping(forward.TCP, 25565, self, "pf:t:mc", time.Hour)
	m.AnyExternal = true
	return m
}

// granted is mc as the gateway granted it on external port ext.
func granted(ext uint16, lease time.Duration) forward.Mapping {
	m := mapping(forward.TCP, 25565, self, "pf:t:mc", lease)
	m.ExternalPort = ext
	return m
}

func TestDiffAnyExternal(t *testing.T) {
	foreign := mapping(forward.TCP, 25565, other, "other", 0)
	tests := []struct {
		name     string
		observed []forward.Mapping
		prune    bool
		want     []string
	}{
		{"no match creates on the suggested port", nil, true, []string{"create tcp/25565"}},
		{"a foreign mapping on the suggested port is no conflict",
			[]forward.Mapping{foreign}, true, []string{"create tcp/25565"}},
		{"matches on another port", []forward.Mapping{foreign, granted(25566, time.Hour)}, true,
			[]string{"noop tcp/25566"}},
		{"renews on the granted port", []forward.Mapping{granted(25566, time.Minute)}, true,
			[]string{"renew tcp/25566"}},
		{"the suggested port wins over another",
			[]forward.Mapping{granted(25564, time.Hour), granted(25565, time.Hour)}, false,
			[]string{"noop tcp/25565"}},
		{"prune keeps the match and deletes a second grant",
			[]forward.Mapping{granted(25566, time.Hour), granted(25567, time.Hour)}, true,
			[]string{"noop tcp/25566", "delete tcp/25567"}},
		{"another internal port is no match", []forward.Mapping{withPort(granted(25566, time.Hour), 25570)}, true,
			[]string{"create tcp/25565", "delete tcp/25566"}},
		{"another rule's mapping is no match",
			[]forward.Mapping{mapping(forward.TCP, 25566, self, "pf:t:web", time.Hour)}, false,
			[]string{"create tcp/25565"}},
		{"an orphan of ours on the suggested port is replaced, not pruned",
			[]forward.Mapping{mapping(forward.TCP, 25565, self, "pf:t:old", time.Hour)}, true,
			[]string{"update tcp/25565"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := forward.Diff([]forward.Mapping{anyMC()}, tt.observed, forward.DiffOptions{Config: "t", Prune: tt.prune, Hosts: []netip.Addr{self, other}})
			if got := actions(plan); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Diff = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDiffAnyExternalActsOnTheGrantedPort(t *testing.T) {
	plan := forward.Diff([]forward.Mapping{anyMC()}, []forward.Mapping{granted(25566, time.Minute)},
		forward.DiffOptions{Config: "t", Hosts: []netip.Addr{self}})
	c := plan.Changes[0]
	if c.After.ExternalPort != 25566 || !c.After.AnyExternal || c.Before.ExternalPort != 25566 {
		t.Errorf("renew asks for %v (any %v) over %v, want the granted port 25566", c.After, c.After.AnyExternal, c.Before)
	}
}

func TestDiffAnyExternalLeavesAFixedRulesKey(t *testing.T) {
	// tcp/25566 is another rule's fixed port: the any rule must not claim
	// the mapping there even if it once looked like its own.
	fixed := mapping(forward.TCP, 25566, self, "pf:t:web", time.Hour)
	plan := forward.Diff([]forward.Mapping{anyMC(), fixed}, []forward.Mapping{granted(25566, time.Hour)},
		forward.DiffOptions{Config: "t", Prune: true, Hosts: []netip.Addr{self}})
	want := []string{"create tcp/25565", "update tcp/25566"}
	if got := actions(plan); !reflect.DeepEqual(got, want) {
		t.Errorf("Diff = %q, want %q", got, want)
	}
}

func TestDiffDoesNotChangeItsInput(t *testing.T) {
	desired := []forward.Mapping{anyMC()}
	desired[0].Protocol = "TCP"
	forward.Diff(desired, []forward.Mapping{granted(25566, time.Hour)}, forward.DiffOptions{Config: "t", Hosts: []netip.Addr{self}})
	if desired[0].Protocol != "TCP" || desired[0].ExternalPort != 25565 {
		t.Errorf("Diff changed its input: %v", desired[0])
	}
}
