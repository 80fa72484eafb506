package docker

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/forward"
)

// TestRulesFromLabels: what each label asks for, as rules the config
// loader made; a wrong label names the container and the label.
func TestRulesFromLabels(t *testing.T) {
	lanNet := Network{Name: "lan", Driver: "macvlan", Addr: netip.MustParseAddr("192.168.1.60")}
	for _, tt := range []struct {
		name string
		c    Container
		want []string // name proto external->host:internal, per rule
		err  string   // a substring of the error
	}{
		{"published, each port once (IPv4 and IPv6 bindings), loopback left out",
			bridged("mc", map[string]string{LabelForward: "published"}, pub(25565, 8080, "tcp"),
				Port{HostIP: "::", HostPort: 25565, ContainerPort: 8080, Protocol: "tcp"}, pub(19132, 19132, "udp"),
				Port{HostIP: "127.0.0.1", HostPort: 9000, ContainerPort: 9000, Protocol: "tcp"}),
			[]string{"mc tcp 25565->self:25565", "mc-2 udp 19132->self:19132"}, ""},
		{"EXT:HOSTPORT, tcp by default",
			bridged("game", map[string]string{LabelForward: "26000:26001"}, pub(26001, 8080, "tcp")),
			[]string{"game tcp 26000->self:26001"}, ""},
		{"a range, udp, named by portfwd.name",
			bridged("Valheim_1", map[string]string{LabelForward: "2456-2457:2456-2457/udp", LabelName: "valheim"}, pub(2456, 2456, "udp"), pub(2457, 2457, "udp")),
			[]string{"valheim udp 2456-2457->self:2456-2457"}, ""},
		{"the container's name made a rule name",
			bridged("My_Server.1", map[string]string{LabelForward: "published"}, pub(8080, 80, "tcp")),
			[]string{"my-server-1 tcp 8080->self:8080"}, ""},
		{"a service alone: its ports and probe",
			bridged("mc", map[string]string{LabelService: "minecraft-java"}, pub(25565, 25565, "tcp")),
			[]string{"mc tcp 25565->self:25565 minecraft-java"}, ""},
		{"a macvlan container is forwarded to its own address and port",
			Container{Name: "plex", Labels: map[string]string{LabelForward: "published"}, Networks: []Network{lanNet},
				Ports: []Port{{ContainerPort: 32400, Protocol: "tcp"}}},
			[]string{"plex tcp 32400->192.168.1.60:32400"}, ""},
		{"a port not published", bridged("game", map[string]string{LabelForward: "26000:26001/tcp"}, pub(26002, 8080, "tcp")),
			nil, `container game: label portfwd.forward="26000:26001/tcp": port 26001/tcp is not published`},
		{"a port out of range", bridged("game", map[string]string{LabelForward: "70000:26001/tcp"}, pub(26001, 8080, "tcp")),
			nil, `container game: label portfwd.forward="70000:26001/tcp"`},
		{"not a forward", bridged("x", map[string]string{LabelForward: "all"}, pub(1, 1, "tcp")),
			nil, `container x: label portfwd.forward="all": "all": want published`},
		{"an unknown protocol, in the loader's words", bridged("x", map[string]string{LabelForward: "26000:26001/tpc"}, pub(26001, 1, "tcp")),
			nil, `label portfwd.forward="26000:26001/tpc": unknown protocol "tpc" (did you mean "tcp"?`},
		{"both protocols, each published", bridged("v", map[string]string{LabelForward: "3000/both"}, pub(3000, 1, "tcp"), pub(3000, 1, "udp")),
			[]string{"v tcp,udp 3000->self:3000"}, ""},
		{"both protocols, udp not published", bridged("v", map[string]string{LabelForward: "3000/both"}, pub(3000, 1, "tcp")),
			nil, `port 3000/udp is not published`},
		{"an unknown service", bridged("x", map[string]string{LabelService: "minecraft"}, pub(25565, 1, "tcp")),
			nil, `container x: label portfwd.service="minecraft"`},
		{"a bad family", bridged("x", map[string]string{LabelForward: "published", LabelFamily: "ipv5"}, pub(25565, 1, "tcp")),
			nil, `container x: label portfwd.family="ipv5"`},
		{"a bad name", bridged("x", map[string]string{LabelForward: "published", LabelName: "Bad Name"}, pub(25565, 1, "tcp")),
			nil, `container x: label portfwd.name="Bad Name"`},
		{"nothing published", bridged("x", map[string]string{LabelForward: "published"}),
			nil, `publishes no port`},
		{"two LAN networks and no choice",
			Container{Name: "x", Labels: map[string]string{LabelForward: "published"}, Networks: []Network{lanNet, {Name: "lan2", Driver: "ipvlan", Addr: netip.MustParseAddr("192.168.1.61")}}},
			nil, `label portfwd.network="": the container has addresses on 2 LAN networks (lan, lan2)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := rules(context.Background(), DefaultOwner, tt.c)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rs {
				got = append(got, describe(r))
			}
			if strings.Join(got, "; ") != strings.Join(tt.want, "; ") {
				t.Errorf("rules %q, want %q", got, tt.want)
			}
		})
	}
}

// describe is "name proto ext->host:int [service]".
func describe(r forward.Rule) string {
	var protos []string
	for _, p := range r.Protocols {
		protos = append(protos, string(p))
	}
	host := r.InternalHost
	s := r.Name + " " + strings.Join(protos, ",") + " " + r.External.String() + "->" + host + ":" + r.Internal.String()
	if r.Service != "" {
		s += " " + r.Service
	}
	return s
}

// TestLabelChoosesNetwork: portfwd.network picks one of several LAN
// networks, and names a network the container is not on.
func TestLabelChoosesNetwork(t *testing.T) {
	c := Container{Name: "x", Labels: map[string]string{LabelForward: "published", LabelNetwork: "lan2"},
		Ports: []Port{{ContainerPort: 80, Protocol: "tcp"}},
		Networks: []Network{{Name: "lan", Driver: "macvlan", Addr: netip.MustParseAddr("192.168.1.60")},
			{Name: "lan2", Driver: "ipvlan", Addr: netip.MustParseAddr("192.168.1.61")}}}
	rs, err := rules(context.Background(), DefaultOwner, c)
	if err != nil || len(rs) != 1 || rs[0].InternalAddr != netip.MustParseAddr("192.168.1.61") {
		t.Fatalf("rules %+v, %v; want one to 192.168.1.61", rs, err)
	}
	c.Labels[LabelNetwork] = "nope"
	if _, err := rules(context.Background(), DefaultOwner, c); err == nil || !strings.Contains(err.Error(), "not on that network (it is on lan, lan2)") {
		t.Errorf("error %v, want the networks named", err)
	}
}
