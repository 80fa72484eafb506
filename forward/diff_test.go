package forward_test

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

var (
	self  = netip.MustParseAddr("192.168.1.10")
	other = netip.MustParseAddr("192.168.1.20")
)

func mapping(p forward.Protocol, port uint16, host netip.Addr, desc string, lease time.Duration) forward.Mapping {
	return forward.Mapping{Key: forward.Key{Protocol: p, ExternalPort: port}, InternalHost: host,
		InternalPort: port, Description: desc, Lease: lease, Enabled: true}
}

// retarget is m forwarding to host:port instead.
func retarget(m forward.Mapping, host netip.Addr, port uint16) forward.Mapping {
	m.InternalHost, m.InternalPort = host, port
	return m
}

func actions(p forward.Plan) []string {
	var out []string
	for _, c := range p.Changes {
		out = append(out, c.Action.String()+" "+c.Key.String())
	}
	return out
}

// diffSelf6 is this host's IPv6 address in TestDiff.
var diffSelf6 = netip.MustParseAddr("2a02:8000:77:1::10")

func TestDiff(t *testing.T) {
	mc := mapping(forward.TCP, 25565, self, "pf:t:mc", time.Hour)
	vh := mapping(forward.UDP, 2456, self, "pf:t:valheim", time.Hour)
	mc6 := mapping(forward.TCP, 25565, diffSelf6, "pf:t:mc", time.Hour)
	mc6.Family = forward.IPv6
	tests := []struct {
		name     string
		desired  []forward.Mapping
		observed []forward.Mapping
		prune    bool
		want     []string
	}{
		{"empty", nil, nil, true, nil},
		{"create", []forward.Mapping{mc}, nil, true, []string{"create tcp/25565"}},
		{"noop when equal", []forward.Mapping{mc}, []forward.Mapping{mc}, true, []string{"noop tcp/25565"}},
		{"noop with upper-case protocol and mapped address",
			[]forward.Mapping{mc},
			[]forward.Mapping{func() forward.Mapping {
				m := mc
				m.Protocol = "TCP"
				m.InternalHost = netip.AddrFrom16(self.As16())
				m.Lease = time.Hour - 400*time.Millisecond
				return m
			}()}, true, []string{"noop tcp/25565"}},
		{"renew when less than half the lease is left",
			[]forward.Mapping{mc}, []forward.Mapping{withLease(mc, 29*time.Minute)}, true, []string{"renew tcp/25565"}},
		{"no renew with more than half left",
			[]forward.Mapping{mc}, []forward.Mapping{withLease(mc, 31*time.Minute)}, true, []string{"noop tcp/25565"}},
		{"permanent mapping satisfies a finite request",
			[]forward.Mapping{mc}, []forward.Mapping{withLease(mc, 0)}, true, []string{"noop tcp/25565"}},
		{"permanent request upgrades a short finite mapping",
			[]forward.Mapping{withLease(mc, 0)}, []forward.Mapping{mc}, true, []string{"renew tcp/25565"}},
		{"permanent request is satisfied by the week IGD:2 grants instead",
			[]forward.Mapping{withLease(mc, 0)}, []forward.Mapping{withLease(mc, forward.PermanentLeaseCap-time.Minute)}, true,
			[]string{"noop tcp/25565"}},
		{"and renewed once half of that week is gone",
			[]forward.Mapping{withLease(mc, 0)}, []forward.Mapping{withLease(mc, forward.PermanentLeaseCap/2-time.Minute)}, true,
			[]string{"renew tcp/25565"}},
		{"a permanent IPv6 pinhole is satisfied by the day UPnP grants",
			[]forward.Mapping{withLease(mc6, 0)}, []forward.Mapping{withLease(mc6, forward.PinholeLeaseCap-time.Minute)}, true,
			[]string{"noop tcp6/25565"}},
		{"and renewed once half of that day is gone",
			[]forward.Mapping{withLease(mc6, 0)}, []forward.Mapping{withLease(mc6, forward.PinholeLeaseCap/2-time.Minute)}, true,
			[]string{"renew tcp6/25565"}},
		{"update on internal port change",
			[]forward.Mapping{mc}, []forward.Mapping{withPort(mc, 25566)}, true, []string{"update tcp/25565"}},
		{"update on disabled mapping",
			[]forward.Mapping{mc}, []forward.Mapping{disabled(mc)}, true, []string{"update tcp/25565"}},
		{"foreign mapping on the key is a conflict",
			[]forward.Mapping{mc}, []forward.Mapping{retarget(mapping(forward.TCP, 25565, self, "upnpc", 0), self, 1)}, true,
			[]string{"conflict tcp/25565"}},
		{"foreign mapping already forwarding where the rule wants is held",
			[]forward.Mapping{mc}, []forward.Mapping{mapping(forward.TCP, 25565, self, "Xbox", 0)}, true,
			[]string{"held tcp/25565"}},
		{"a disabled foreign mapping is a conflict, not held",
			[]forward.Mapping{mc}, []forward.Mapping{disabled(mapping(forward.TCP, 25565, self, "Xbox", 0))}, true,
			[]string{"conflict tcp/25565"}},
		{"another host's portfwd mapping is foreign",
			[]forward.Mapping{mc}, []forward.Mapping{mapping(forward.TCP, 25565, other, "pf:t:mc", 0)}, true,
			[]string{"conflict tcp/25565"}},
		{"prune deletes owned mappings no longer wanted",
			[]forward.Mapping{mc}, []forward.Mapping{mc, vh}, true, []string{"noop tcp/25565", "delete udp/2456"}},
		{"no prune keeps them",
			[]forward.Mapping{mc}, []forward.Mapping{mc, vh}, false, []string{"noop tcp/25565"}},
		{"prune never touches foreign mappings",
			nil, []forward.Mapping{
				mapping(forward.TCP, 8080, self, "upnpc", 0),
				mapping(forward.TCP, 8081, other, "pf:t:web", 0),
				mapping(forward.TCP, 8082, self, "my portfwd:web", 0),
			}, true, nil},
		{"same port on both protocols is two keys",
			[]forward.Mapping{mc, mapping(forward.UDP, 25565, self, "pf:t:mc", time.Hour)}, nil, true,
			[]string{"create tcp/25565", "create udp/25565"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := forward.Diff(tt.desired, tt.observed, forward.DiffOptions{Config: "t", Prune: tt.prune, Hosts: []netip.Addr{self, diffSelf6}})
			if got := actions(plan); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Diff = %q, want %q", got, tt.want)
			}
			if plan.Pending() != hasChange(tt.want) {
				t.Errorf("Pending = %v for %q", plan.Pending(), tt.want)
			}
		})
	}
}

func TestDiffIsDeterministic(t *testing.T) {
	var desired, observed []forward.Mapping
	for p := uint16(2000); p < 2050; p++ {
		desired = append(desired, mapping(forward.UDP, p, self, "pf:t:r", time.Hour))
		observed = append(observed, mapping(forward.TCP, p, self, "pf:t:old", time.Hour))
	}
	opts := forward.DiffOptions{Config: "t", Prune: true, Hosts: []netip.Addr{self}}
	first := forward.Diff(desired, observed, opts)
	for i := 0; i < 20; i++ {
		if got := forward.Diff(desired, observed, opts); !reflect.DeepEqual(got, first) {
			t.Fatalf("Diff is not deterministic")
		}
	}
	if first.Count(forward.Delete) != 50 || first.Count(forward.Create) != 50 {
		t.Errorf("counts: %d deletes, %d creates", first.Count(forward.Delete), first.Count(forward.Create))
	}
	if first.Changes[0].Key.Protocol != forward.TCP || first.Changes[50].Key.Protocol != forward.UDP {
		t.Errorf("changes not sorted by key: %v", actions(first)[:2])
	}
}

func TestActionString(t *testing.T) {
	want := map[forward.Action]string{forward.Noop: "noop", forward.Create: "create", forward.Update: "update",
		forward.Renew: "renew", forward.Delete: "delete", forward.Conflict: "conflict", forward.Action(99): "unknown"}
	for a, s := range want {
		if a.String() != s {
			t.Errorf("Action(%d).String() = %q, want %q", int(a), a.String(), s)
		}
	}
}

func hasChange(actions []string) bool {
	for _, a := range actions {
		if !strings.HasPrefix(a, "noop") && !strings.HasPrefix(a, "held") {
			return true
		}
	}
	return false
}

func withLease(m forward.Mapping, d time.Duration) forward.Mapping { m.Lease = d; return m }
func withPort(m forward.Mapping, p uint16) forward.Mapping         { m.InternalPort = p; return m }
func disabled(m forward.Mapping) forward.Mapping                   { m.Enabled = false; return m }

// On a gateway that is this machine (iptables), every tagged mapping is
// this config's: a rule removed from the file is pruned whatever host it
// forwarded to, while foreign rules stay out of the plan.
func TestDiffAnyHost(t *testing.T) {
	nas := mapping(forward.TCP, 8080, other, "pf:t:nas", 0)
	foreign := mapping(forward.TCP, 9090, other, "docker", 0)
	observed := []forward.Mapping{nas, foreign}
	hostsOnly := forward.Diff(nil, observed, forward.DiffOptions{Config: "t", Prune: true, Hosts: []netip.Addr{self}})
	if len(hostsOnly.Changes) != 0 {
		t.Errorf("by hosts: %q, want nothing (another host's portfwd owns it)", actions(hostsOnly))
	}
	anyHost := forward.Diff(nil, observed, forward.DiffOptions{Config: "t", Prune: true, Hosts: []netip.Addr{self}, AnyHost: true})
	if got := actions(anyHost); !reflect.DeepEqual(got, []string{"delete tcp/8080"}) {
		t.Errorf("AnyHost: %q, want [delete tcp/8080]", got)
	}
	opts := forward.DiffOptions{Config: "t", AnyHost: true}
	if !opts.Owns(nas) || opts.Owns(foreign) {
		t.Errorf("AnyHost Owns(tagged)=%v Owns(foreign)=%v; want true, false", opts.Owns(nas), opts.Owns(foreign))
	}
}

// Turning hairpin on or off for a rule is a change to its mapping.
func TestDiffHairpin(t *testing.T) {
	plain := mapping(forward.TCP, 25565, self, "pf:t:mc", 0)
	hairpin := plain
	hairpin.Hairpin = true
	opts := forward.DiffOptions{Config: "t", Hosts: []netip.Addr{self}}
	for _, tt := range []struct {
		name           string
		want, observed forward.Mapping
		action         forward.Action
	}{
		{"turned on", hairpin, plain, forward.Update},
		{"turned off", plain, hairpin, forward.Update},
		{"unchanged", hairpin, hairpin, forward.Noop},
	} {
		plan := forward.Diff([]forward.Mapping{tt.want}, []forward.Mapping{tt.observed}, opts)
		if len(plan.Changes) != 1 || plan.Changes[0].Action != tt.action {
			t.Fatalf("%s: %q, want %v", tt.name, actions(plan), tt.action)
		}
		if r := plan.Changes[0].Reason; tt.action == forward.Update && !strings.HasPrefix(r, "hairpin is") {
			t.Errorf("%s: reason %q; want it to name hairpin", tt.name, r)
		}
	}
}
