package forward_test

import (
	"context"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

// loadNamed loads src as the config file named file.
func loadNamed(t *testing.T, file, src string) *forward.Config {
	t.Helper()
	cfg, _, err := forward.Load(context.Background(), file, []byte(src), forward.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const (
	minecraftYAML = "rules:\n  - name: minecraft\n    service: minecraft-java\n"
	valheimYAML   = "rules:\n  - name: valheim\n    service: valheim\n"
)

// Two configs on one PC (issue 13): each plans and prunes its own, never
// the other's, and down of one removes only its own.
func TestTwoConfigsOnOnePC(t *testing.T) {
	self := netip.MustParseAddr("192.168.1.10")
	props := forward.Properties{}
	mc := loadNamed(t, "configs/minecraft.yaml", minecraftYAML)
	vh := loadNamed(t, "configs/valheim.yaml", valheimYAML)
	observed := append(mc.Desired(forward.Hosts{Self: self}, props), vh.Desired(forward.Hosts{Self: self}, props)...)
	for _, cfg := range []*forward.Config{mc, vh} {
		own := cfg.Ownership(forward.Hosts{Self: self}, props)
		own.Prune = true
		plan := forward.Diff(cfg.Desired(forward.Hosts{Self: self}, props), observed, own)
		if plan.Pending() || plan.Count(forward.Delete) != 0 {
			t.Errorf("%s: plan %q, want only noops", cfg.Name, actions(plan))
		}
		down := forward.Diff(nil, observed, own)
		for _, c := range down.Changes {
			if c.Action != forward.Delete || c.Rule != cfg.Rules[0].Name {
				t.Errorf("%s: down plans %v %s of rule %s", cfg.Name, c.Action, c.Key, c.Rule)
			}
		}
		if len(down.Changes) != len(cfg.Desired(forward.Hosts{Self: self}, props)) {
			t.Errorf("%s: down plans %q", cfg.Name, actions(down))
		}
	}
}

// A rule removed from a file is still pruned by that file's next apply.
func TestRemovedRuleIsPrunedByItsConfig(t *testing.T) {
	self := netip.MustParseAddr("192.168.1.10")
	before := loadNamed(t, "games.yaml", minecraftYAML+"  - name: web\n    protocol: tcp\n    external_port: 8080\n")
	after := loadNamed(t, "games.yaml", minecraftYAML)
	other := loadNamed(t, "valheim.yaml", valheimYAML)
	observed := append(before.Desired(forward.Hosts{Self: self}, forward.Properties{}), other.Desired(forward.Hosts{Self: self}, forward.Properties{})...)
	own := after.Ownership(forward.Hosts{Self: self}, forward.Properties{})
	own.Prune = true
	plan := forward.Diff(after.Desired(forward.Hosts{Self: self}, forward.Properties{}), observed, own)
	if got, want := actions(plan), []string{"delete tcp/8080", "noop tcp/25565"}; !reflect.DeepEqual(got, want) {
		t.Errorf("plan %q, want %q", got, want)
	}
}

// A router that keeps 32 characters of a description: the mapping is
// still the rule's, unchanged, and down still removes it.
func TestTruncatedDescriptionIsStillOwned(t *testing.T) {
	self := netip.MustParseAddr("192.168.1.10")
	cfg := loadNamed(t, "minecraft.yaml", "rules:\n  - name: minecraft-java-server\n    service: minecraft-java\n")
	desired := cfg.Desired(forward.Hosts{Self: self}, forward.Properties{})
	observed := desired[0]
	if len(observed.Description) <= 32 {
		t.Fatalf("tag %q is too short for this test", observed.Description)
	}
	for _, keep := range []int{32, 31} {
		cut := observed
		cut.Description = observed.Description[:keep]
		own := cfg.Ownership(forward.Hosts{Self: self}, forward.Properties{})
		own.Prune = true
		if got := actions(forward.Diff(desired, []forward.Mapping{cut}, own)); !reflect.DeepEqual(got, []string{"noop tcp/25565"}) {
			t.Errorf("cut to %d: plan %q, want a noop", keep, got)
		}
		if got := actions(forward.Diff(nil, []forward.Mapping{cut}, own)); !reflect.DeepEqual(got, []string{"delete tcp/25565"}) {
			t.Errorf("cut to %d: down plans %q, want the delete", keep, got)
		}
	}
}

// A forward made before configs had names is adopted by the config that
// has its rule, re-tagged by an add over it (no delete: the port is never
// free), and left alone by a config that lacks the rule.
func TestLegacyTagIsAdoptedInPlace(t *testing.T) {
	self := netip.MustParseAddr("192.168.1.10")
	gw := forwardtest.NewMemory(self)
	legacy := forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: 25565}, InternalHost: self,
		InternalPort: 25565, Description: (forward.LegacyTagPrefix + "minecraft"), Lease: time.Hour, Enabled: true}
	gw.Put(legacy)
	vh := loadNamed(t, "valheim.yaml", valheimYAML)
	g := &forward.Gateway{Backend: gw, Self: self}
	r, err := forward.Reconcile(context.Background(), g, vh, forward.ReconcileOptions{Mode: forward.ModeApply, Prune: true})
	if err != nil || r.Plan.Count(forward.Delete) != 0 {
		t.Fatalf("valheim's apply: %v, plan %q; want the legacy minecraft forward left alone", err, actions(r.Plan))
	}
	mc := loadNamed(t, "minecraft.yaml", minecraftYAML)
	adds, deletes := gw.Calls()
	r, err = forward.Reconcile(context.Background(), g, mc, forward.ReconcileOptions{Mode: forward.ModeApply, Prune: true})
	if err != nil || r.Result.Failed() != 0 {
		t.Fatalf("minecraft's apply: %v, %+v", err, r.Result)
	}
	if got := actions(r.Plan); !reflect.DeepEqual(got, []string{"renew tcp/25565"}) {
		t.Errorf("plan %q, want the re-tag as a renewal", got)
	}
	if a, d := gw.Calls(); a != adds+1 || d != deletes {
		t.Errorf("re-tag made %d adds and %d deletes, want 1 add and no delete", a-adds, d-deletes)
	}
	list, _ := gw.List(context.Background())
	if len(list) != 3 || !hasDescription(list, forward.Tag("minecraft", "minecraft")) {
		t.Errorf("gateway holds %+v, want pf:minecraft:minecraft beside valheim's", list)
	}
}

func hasDescription(ms []forward.Mapping, desc string) bool {
	for _, m := range ms {
		if m.Description == desc {
			return true
		}
	}
	return false
}

// Point 13: a foreign mapping that already forwards the key where the rule
// wants is held, not a conflict, and Apply counts no failure.
func TestHeldByAnotherProgramIsNoFailure(t *testing.T) {
	self := netip.MustParseAddr("192.168.1.10")
	gw := forwardtest.NewMemory(self)
	gw.Put(forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: 25565}, InternalHost: self,
		InternalPort: 25565, Description: "Xbox", Enabled: true})
	mc := loadNamed(t, "minecraft.yaml", minecraftYAML)
	r, err := forward.Reconcile(context.Background(), &forward.Gateway{Backend: gw, Self: self}, mc,
		forward.ReconcileOptions{Mode: forward.ModeApply, Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Plan.Count(forward.Held) != 1 || r.Plan.Pending() || r.Result.Failed() != 0 || r.Result.Made() != 0 {
		t.Errorf("plan %q, %d failed, %d made; want one held, nothing pending, failed or made", actions(r.Plan), r.Result.Failed(), r.Result.Made())
	}
	if note := r.Result.Outcomes[0].Note; note != `in place, held by tcp/25565 -> 192.168.1.10:25565 ("Xbox")` {
		t.Errorf("note %q", note)
	}
}

// A re-tag is only for a mapping whose tag differs: a mapping wanted with
// the older tag itself (as backends' own tests ask) is unchanged.
func TestLegacyTagWantedAsIsIsNoop(t *testing.T) {
	self := netip.MustParseAddr("192.168.1.10")
	m := forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: 25565}, InternalHost: self,
		InternalPort: 25565, Description: (forward.LegacyTagPrefix + "mc"), Enabled: true}
	plan := forward.Diff([]forward.Mapping{m}, []forward.Mapping{m}, forward.DiffOptions{Rules: []string{"mc"}, Hosts: []netip.Addr{self}})
	if got := actions(plan); !reflect.DeepEqual(got, []string{"noop tcp/25565"}) {
		t.Errorf("plan %q, want a noop", got)
	}
}
