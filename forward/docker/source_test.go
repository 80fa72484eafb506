package docker

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// clock is a settable clock for the grace tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) add(d time.Duration)     { c.t = c.t.Add(d) }
func names(cfg *forward.Config) []string { return ruleNames(cfg.Rules) }

func ruleNames(rs []forward.Rule) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

func read(t *testing.T, s *Source) Snapshot {
	t.Helper()
	snap, err := s.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// TestSourceMerge: only labelled containers; a bad label skips its
// container alone; a clash keeps the first by name; the config carries
// the owner and the file's gateway.
func TestSourceMerge(t *testing.T) {
	mc := bridged("mc", map[string]string{LabelForward: "published"}, pub(25565, 8080, "tcp"))
	plain := bridged("plain", nil, pub(27000, 8080, "tcp"))
	bad := bridged("bad", map[string]string{LabelForward: "x"}, pub(1000, 1, "tcp"))
	twin := bridged("zz-twin", map[string]string{LabelForward: "25565:25566"}, pub(25566, 1, "tcp"))
	s := &Source{Engine: newFake(twin, plain, bad, mc), Gateway: forward.GatewaySettings{Lease: time.Hour}}
	snap := read(t, s)
	if got := strings.Join(names(snap.Config), ","); got != "mc" {
		t.Errorf("rules %s, want mc alone", got)
	}
	if snap.Config.Name != DefaultOwner || snap.Config.Gateway.Lease != time.Hour {
		t.Errorf("config name %q lease %v, want %q and the file's hour", snap.Config.Name, snap.Config.Gateway.Lease, DefaultOwner)
	}
	if len(snap.Problems) != 2 || !strings.Contains(snap.Problems[0].Error(), "container bad: label portfwd.forward") ||
		!strings.Contains(snap.Problems[1].Error(), "container zz-twin: external port 25565 is already forwarded for mc") {
		t.Errorf("problems %v, want bad's label and zz-twin's clash", snap.Problems)
	}
}

// TestSourceGrace: a container gone keeps its rules for the grace, a
// restart within it changes nothing, and after it they are gone; a new
// container on the same port takes it at once.
func TestSourceGrace(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	mc := bridged("mc", map[string]string{LabelForward: "published"}, pub(25565, 8080, "tcp"))
	e := newFake(mc)
	s := &Source{Engine: e, Grace: 2 * time.Second, Now: c.now}
	read(t, s)

	e.set()
	c.add(time.Second)
	snap := read(t, s)
	if got := names(snap.Config); len(got) != 1 || !snap.Recheck.Equal(c.t.Add(time.Second)) {
		t.Errorf("1s after the stop: rules %v, recheck %v; want mc kept, a recheck at the grace's end", got, snap.Recheck)
	}
	e.set(mc) // restarted within the grace
	c.add(500 * time.Millisecond)
	if snap := read(t, s); len(names(snap.Config)) != 1 || !snap.Recheck.IsZero() {
		t.Errorf("after the restart: %v, recheck %v", names(snap.Config), snap.Recheck)
	}
	e.set()
	c.add(time.Second)
	read(t, s)
	c.add(2 * time.Second)
	if snap := read(t, s); len(snap.Config.Rules) != 0 || !snap.Recheck.IsZero() {
		t.Errorf("after the grace: rules %v, want none", names(snap.Config))
	}

	e.set(mc)
	read(t, s)
	e.set(bridged("mc2", map[string]string{LabelForward: "published"}, pub(25565, 8080, "tcp")))
	if got := strings.Join(names(read(t, s).Config), ","); got != "mc2" {
		t.Errorf("a new container on the port: rules %s, want mc2 alone at once", got)
	}
}

// TestSourceEngineDown: a failed read is an error, and the kept rules
// stay for the next read (the caller keeps the forwards).
func TestSourceEngineDown(t *testing.T) {
	e := newFake(bridged("mc", map[string]string{LabelForward: "published"}, pub(25565, 8080, "tcp")))
	s := &Source{Engine: e, Grace: -1}
	read(t, s)
	e.err = errors.New("connection refused")
	if _, err := s.Read(context.Background()); err == nil {
		t.Fatal("a failed listing must be an error, not an empty config")
	}
}

// TestOwnership: the containers' config owns its own tag to this host
// (and to the LAN addresses of its containers) only: the file's forwards,
// another Docker host's and foreign ones are never its own.
func TestOwnership(t *testing.T) {
	self := netip.MustParseAddr("192.168.1.10")
	other := netip.MustParseAddr("192.168.1.20")
	s := &Source{Engine: newFake(
		bridged("mc", map[string]string{LabelForward: "published"}, pub(25565, 8080, "tcp")),
		Container{Name: "plex", Labels: map[string]string{LabelForward: "published"}, Ports: []Port{{ContainerPort: 32400, Protocol: "tcp"}},
			Networks: []Network{{Name: "lan", Driver: "macvlan", Addr: netip.MustParseAddr("192.168.1.60")}}})}
	cfg := read(t, s).Config
	own := cfg.Ownership(forward.Hosts{Self: self}, forward.Properties{Name: "upnp"})
	mapping := func(tag string, host netip.Addr, port uint16) forward.Mapping {
		return forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: port}, InternalHost: host, InternalPort: port, Description: tag, Enabled: true}
	}
	for _, tt := range []struct {
		m    forward.Mapping
		owns bool
	}{
		{mapping("pf:docker:mc", self, 25565), true},
		{mapping("pf:docker:plex", netip.MustParseAddr("192.168.1.60"), 32400), true},
		{mapping("pf:docker:gone", self, 2000), true},  // removed while portfwd was down: pruned
		{mapping("pf:docker:mc", other, 25566), false}, // another Docker host's
		{mapping("pf:home:web", self, 8443), false},    // the file's
		{mapping("someone else", self, 3074), false},
	} {
		if got := own.Owns(tt.m); got != tt.owns {
			t.Errorf("Owns(%s %s → %s) = %v, want %v", tt.m.Description, tt.m.Key, tt.m.InternalHost, got, tt.owns)
		}
	}
	plan := forward.Diff(cfg.Desired(forward.Hosts{Self: self}, forward.Properties{}), []forward.Mapping{
		mapping("pf:docker:gone", self, 2000), mapping("pf:docker:mc", other, 25566), mapping("pf:home:web", self, 8443)}, withPrune(own))
	var deleted []string
	for _, c := range plan.Changes {
		if c.Action == forward.Delete {
			deleted = append(deleted, c.Key.String())
		}
	}
	if strings.Join(deleted, ",") != "tcp/2000" {
		t.Errorf("deleted %v, want only the forward of the container gone (tcp/2000)", deleted)
	}
}

func withPrune(o forward.DiffOptions) forward.DiffOptions { o.Prune = true; return o }
