package forward

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fakeLookup stands in for DNS: tests never touch the network.
func fakeLookup(_ context.Context, host string) ([]netip.Addr, error) {
	switch host {
	case "nas.lan":
		return []netip.Addr{netip.MustParseAddr("192.168.1.20")}, nil
	case "mixed.lan":
		return []netip.Addr{netip.MustParseAddr("fd00::1"), netip.MustParseAddr("192.168.1.30")}, nil
	case "dual.lan":
		return []netip.Addr{netip.MustParseAddr("fd00::1"), netip.MustParseAddr("2a02:8000:77:1::40"), netip.MustParseAddr("192.168.1.40")}, nil
	case "v6.lan":
		return []netip.Addr{netip.MustParseAddr("fd00::1")}, nil
	case "localhost":
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	return nil, errors.New("no such host")
}

func load(t *testing.T, src string) (*Config, []Diagnostic, error) {
	t.Helper()
	return Load(context.Background(), "portfwd.yaml", []byte(src), LoadOptions{LookupHost: fakeLookup})
}

// want is an expected diagnostic: its line, its key, and part of its message.
type want struct {
	line int
	key  string
	msg  string
}

// checkDiags asserts that got holds exactly the wanted diagnostics.
func checkDiags(t *testing.T, got []Diagnostic, wants []want) {
	t.Helper()
	for _, w := range wants {
		found := false
		for _, d := range got {
			if d.File == "portfwd.yaml" && d.Line == w.line && d.Key == w.key && strings.Contains(d.Message, w.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("missing %d: %s: %s in:\n%s", w.line, w.key, w.msg, (&ConfigError{Problems: got}).Error())
		}
	}
	if len(got) != len(wants) {
		t.Errorf("got %d diagnostics, want %d:\n%s", len(got), len(wants), (&ConfigError{Problems: got}).Error())
	}
}

func problems(t *testing.T, err error) []Diagnostic {
	t.Helper()
	if err == nil {
		return nil
	}
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error is %T, want *ConfigError: %v", err, err)
	}
	return ce.Problems
}

const rule = "rules:\n  - name: mc\n    protocol: tcp\n"

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []want
	}{
		{"syntax", "rules:\n  - name: a\n    external_port: [1\n", []want{{3, "", "invalid YAML: did not find expected ',' or ']'"}}},
		{"tab indent", "rules:\n\t- name: a\n", []want{{2, "", "invalid YAML"}}},
		{"empty file", "", []want{{1, "", "the file is empty"}}},
		{"only comments", "# nothing\n", []want{{1, "", "the file is empty"}}},
		{"null document", "~\n", []want{{1, "", "the file is empty"}}},
		{"no rules key", "gateway:\n  backend: upnp\n", []want{{1, "", "no rules: key"}}},
		{"rules null", "rules:\n", []want{{1, "rules", "is empty"}}},
		{"two documents", "rules: []\n---\nrules: []\n", []want{{2, "", "more than one YAML document"}}},
		{"root is a list", "- name: a\n", []want{{1, "", "want a mapping with gateway: and rules: keys, got a list"}}},
		{"unknown top key", "rules: []\nrulez: []\n", []want{{2, "rulez", `unknown key "rulez" (did you mean "rules"?)`}}},
		{"unknown key far from any", "rules: []\nzzzzzz: 1\n", []want{{2, "zzzzzz", "known keys: name, gateway, probe_server, rules"}}},
		{"unknown probe", "rules:\n  - name: mc\n    service: minecraft-java\n    probe: gopher\n", []want{{4, "rules[0].probe", `unknown probe "gopher"`}}},
		{"probe over the wrong protocol", "rules:\n  - name: mc\n    protocol: udp\n    external_port: 2000\n    probe: http\n", []want{{5, "rules[0].probe", `probe "http" speaks tcp, but the rule forwards udp`}}},
		{"bad probe server url", "probe_server:\n  url: ftp://x\nrules: []\n", []want{{2, "probe_server.url", "invalid probe server URL"}}},
		{"probe server token without url", "probe_server:\n  token: s3cret\nrules: []\n", []want{{2, "probe_server.url", "a token needs a url"}}},
		{"unknown gateway key", "gateway:\n  leas: 1h\nrules: []\n", []want{{2, "gateway.leas", `did you mean "lease"?`}}},
		{"unknown rule key", rule + "    externl_port: 25565\n", []want{
			{2, "rules[0].external_port", "external_port is required"},
			{4, "rules[0].externl_port", `unknown key "externl_port" (did you mean "external_port"?)`},
		}},
		{"duplicate key", rule + "    external_port: 1025\n    external_port: 1026\n", []want{{5, "rules[0].external_port", "key set twice; first set on line 4"}}},
		{"non-scalar key", "rules: []\n? [a]\n: 1\n", []want{{2, "", "keys must be plain names"}}},
		{"rules is a scalar", "rules: all\n", []want{{1, "rules", `want a list of rules, got "all"`}}},
		{"rule is a scalar", "rules:\n  - minecraft\n", []want{{2, "rules[0]", "want a rule"}}},
		{"gateway is a list", "gateway: [upnp]\nrules: []\n", []want{{1, "gateway", "want a mapping"}}},
		{"name is a list", "rules:\n  - name: [a]\n    protocol: tcp\n    external_port: 2000\n", []want{{2, "rules[0].name", "want a single value, got a list"}}},
		{"port is a mapping", rule + "    external_port: {a: 1}\n", []want{{4, "rules[0].external_port", "want a single value, got a mapping"}}},
		{"port is text", rule + "    external_port: abc\n", []want{{4, "rules[0].external_port", `invalid port "abc"`}}},
		{"port is a float", rule + "    external_port: 25565.5\n", []want{{4, "rules[0].external_port", `invalid port "25565.5"`}}},
		{"negative port", rule + "    external_port: -5\n", []want{{4, "rules[0].external_port", `invalid port "-5"`}}},
		{"three part range", rule + "    external_port: 1-2-3\n", []want{{4, "rules[0].external_port", `invalid port "1-2-3"`}}},
		{"port 0", rule + "    external_port: 0\n", []want{{4, "rules[0].external_port", "port 0 is out of range 1-65535"}}},
		{"port too big", rule + "    external_port: 70000\n", []want{{4, "rules[0].external_port", "port 70000 is out of range 1-65535"}}},
		{"port overflows", rule + "    external_port: 99999999999999999999999\n", []want{{4, "rules[0].external_port", "out of range"}}},
		{"range end too big", rule + "    external_port: 65000-65536\n", []want{{4, "rules[0].external_port", "port 65536 is out of range"}}},
		{"reversed range", rule + "    external_port: 2458-2456\n", []want{{4, "rules[0].external_port", `reversed range "2458-2456": write 2456-2458`}}},
		{"internal port 0", rule + "    external_port: 2000\n    internal_port: 0\n", []want{{5, "rules[0].internal_port", "port 0 is out of range"}}},
		{"missing name", "rules:\n  - protocol: tcp\n    external_port: 2000\n", []want{{2, "rules[0].name", "name is required"}}},
		{"empty name", "rules:\n  - name: ''\n    protocol: tcp\n    external_port: 2000\n", []want{{2, "rules[0].name", `invalid name ""`}}},
		{"bad name", "rules:\n  - name: My_Server\n    protocol: tcp\n    external_port: 2000\n", []want{{2, "rules[0].name", `invalid name "My_Server"`}}},
		{"name starts with hyphen", "rules:\n  - name: -mc\n    protocol: tcp\n    external_port: 2000\n", []want{{2, "rules[0].name", `invalid name "-mc"`}}},
		{"long name", "rules:\n  - name: " + strings.Repeat("a", 41) + "\n    protocol: tcp\n    external_port: 2000\n", []want{{2, "rules[0].name", "longer than 40 characters"}}},
		{"unknown protocol", "rules:\n  - name: mc\n    protocol: tpc\n    external_port: 2000\n", []want{{3, "rules[0].protocol", `unknown protocol "tpc" (did you mean "tcp"? want tcp, udp or both)`}}},
		{"protocol icmp", "rules:\n  - name: mc\n    protocol: icmp\n    external_port: 2000\n", []want{{3, "rules[0].protocol", `unknown protocol "icmp" (want tcp, udp or both)`}}},
		{"missing protocol", "rules:\n  - name: mc\n    external_port: 2000\n", []want{{2, "rules[0].protocol", "protocol is required"}}},
		{"missing port", "rules:\n  - name: mc\n    protocol: udp\n", []want{{2, "rules[0].external_port", "external_port is required"}}},
		{"unknown protocol, extra letter", "rules:\n  - name: mc\n    protocol: tcpp\n    external_port: 2000\n", []want{{3, "rules[0].protocol", `(did you mean "tcp"?`}}},
		{"unknown anchor", "rules:\n  - name: a\n    <<: *base\n", []want{{3, "", "invalid YAML: unknown anchor 'base' referenced"}}},
		{"unknown service", "rules:\n  - name: mc\n    service: minecraft\n", []want{{3, "rules[0].service", `unknown service "minecraft"; did you mean "minecraft-bedrock" or "minecraft-java"?`}}},
		{"misspelt service", "rules:\n  - name: v\n    service: valhiem\n", []want{{3, "rules[0].service", `did you mean "valheim"?`}}},
		{"service far from any", "rules:\n  - name: v\n    service: qqqqqqqq\n", []want{{3, "rules[0].service", `unknown service "qqqqqqqq" (portfwd services`}}},
		{"duplicate names", "rules:\n  - name: mc\n    service: minecraft-java\n  - name: mc\n    service: minecraft-bedrock\n",
			[]want{{4, "rules[1].name", `duplicate rule name "mc"; first used on line 2`}}},
		{"same port", "rules:\n  - name: a\n    service: minecraft-java\n  - name: b\n    protocol: both\n    external_port: 25565\n",
			[]want{{6, "rules[1].external_port", `rule "b" claims tcp/25565, already claimed by rule "a" (line 2)`}}},
		{"same port from services", "rules:\n  - name: a\n    service: terraria\n  - name: b\n    service: satisfactory\n",
			[]want{{5, "rules[1].service", `rule "b" claims tcp/7777, already claimed by rule "a" (line 2)`}}},
		{"overlapping ranges", "rules:\n  - name: a\n    protocol: udp\n    external_port: 2000-2010\n  - name: b\n    protocol: udp\n    external_port: 2010-2020\n",
			[]want{{7, "rules[1].external_port", `rule "b" claims udp 2010-2020, which overlaps udp 2000-2010 of rule "a" (line 2)`}}},
		{"unequal ranges single", rule + "    external_port: 2456-2458\n    internal_port: 2456\n",
			[]want{{5, "rules[0].internal_port", "ranges of unequal length: external_port 2456-2458 is 3 port(s), internal_port 2456 is 1"}}},
		{"unequal ranges", rule + "    external_port: 2456-2458\n    internal_port: 3000-3001\n",
			[]want{{5, "rules[0].internal_port", "ranges of unequal length"}}},
		{"host does not resolve", rule + "    external_port: 2000\n    internal_host: nas.example\n",
			[]want{{5, "rules[0].internal_host", `internal_host "nas.example" does not resolve: no such host`}}},
		{"host resolves to loopback", rule + "    external_port: 2000\n    internal_host: localhost\n",
			[]want{{5, "rules[0].internal_host", "it resolves to 127.0.0.1, which is a loopback address"}}},
		{"host resolves to IPv6 only", rule + "    external_port: 2000\n    internal_host: v6.lan\n",
			[]want{{5, "rules[0].internal_host", "no IPv4 address"}}},
		{"loopback literal", rule + "    external_port: 2000\n    internal_host: 127.0.0.1\n",
			[]want{{5, "rules[0].internal_host", "use internal_host: self"}}},
		{"IPv6 literal on an IPv4 rule", rule + "    external_port: 2000\n    internal_host: 2a02:8000:77:1::10\n",
			[]want{{5, "rules[0].internal_host", "is IPv6: a gateway forwards IPv4 ports to IPv4 hosts; for a pinhole to this IPv6 address set family: ipv6"}}},
		{"ULA literal on an IPv6 rule", rule + "    external_port: 2000\n    family: ipv6\n    internal_host: fd00::5\n",
			[]want{{6, "rules[0].internal_host", "unique local IPv6 address the internet cannot reach"}}},
		{"IPv4 literal on an IPv6 rule", rule + "    external_port: 2000\n    family: ipv6\n    internal_host: 192.168.1.20\n",
			[]want{{6, "rules[0].internal_host", "is IPv4, but the rule is family: ipv6"}}},
		{"literal on a dual rule", rule + "    external_port: 2000\n    family: dual\n    internal_host: 192.168.1.20\n",
			[]want{{6, "rules[0].internal_host", "two rules (family: ipv4 and family: ipv6)"}}},
		{"unknown family", rule + "    external_port: 2000\n    family: v6\n",
			[]want{{5, "rules[0].family", `unknown family "v6"; want ipv4 (the default), ipv6`}}},
		{"pinhole with port translation", rule + "    external_port: 2000\n    internal_port: 8080\n    family: dual\n",
			[]want{{6, "rules[0].family", "IPv6 has no port translation"}}},
		{"host without IPv6 on an IPv6 rule", rule + "    external_port: 2000\n    family: ipv6\n    internal_host: nas.lan\n",
			[]want{{6, "rules[0].internal_host", "no IPv6 address (a pinhole needs the host's global IPv6 address)"}}},
		{"unspecified literal", rule + "    external_port: 2000\n    internal_host: 0.0.0.0\n",
			[]want{{5, "rules[0].internal_host", "is not a host address"}}},
		{"bad address literal", rule + "    external_port: 2000\n    internal_host: 192.168.1.300\n",
			[]want{{5, "rules[0].internal_host", `invalid internal_host "192.168.1.300"`}}},
		{"bad hostname", rule + "    external_port: 2000\n    internal_host: my nas\n",
			[]want{{5, "rules[0].internal_host", `invalid internal_host "my nas"`}}},
		{"unknown backend", "gateway:\n  backend: miniupnp\nrules: []\n", []want{{2, "gateway.backend", `unknown backend "miniupnp"`}}},
		{"backend typo", "gateway:\n  backend: natpnp\nrules: []\n", []want{{2, "gateway.backend", `did you mean "natpmp"?`}}},
		{"bad lease", "gateway:\n  lease: 1 hour\nrules: []\n", []want{{2, "gateway.lease", `invalid lease "1 hour"`}}},
		{"negative lease", "gateway:\n  lease: -1h\nrules: []\n", []want{{2, "gateway.lease", "is negative"}}},
		{"negative seconds", "gateway:\n  lease: -5\nrules: []\n", []want{{2, "gateway.lease", "is negative"}}},
		{"sub-second lease", "gateway:\n  lease: 500ms\nrules: []\n", []want{{2, "gateway.lease", "under a second"}}},
		{"huge lease", "gateway:\n  lease: 99999999999999\nrules: []\n", []want{{2, "gateway.lease", "too long"}}},
		{"address with port", "gateway:\n  address: 192.168.1.1:5351\nrules: []\n", []want{{2, "gateway.address", "has a port"}}},
		{"address hostname", "gateway:\n  address: router.lan\nrules: []\n", []want{{2, "gateway.address", "is not an IPv4 address"}}},
		{"address IPv6", "gateway:\n  address: fe80::1\nrules: []\n", []want{{2, "gateway.address", "is not an IPv4 address"}}},
		{"wan interface with a slash", "gateway:\n  wan_interface: eth0/1\nrules: []\n", []want{{2, "gateway.wan_interface", "is not a network interface name"}}},
		{"wan interface too long", "gateway:\n  wan_interface: enp0s31f6-uplink0\nrules: []\n", []want{{2, "gateway.wan_interface", "ip -br link"}}},
		{"hairpin not a bool", "gateway:\n  hairpin: yes\nrules: []\n", []want{{2, "gateway.hairpin", `want true or false, got "yes"`}}},
		{"rule hairpin a list", "rules:\n  - name: a\n    service: ssh\n    hairpin: [true]\n", []want{{4, "rules[0].hairpin", "want a single value"}}},
		{"merge of a scalar", "rules:\n  - <<: 5\n    name: a\n", []want{
			{2, "rules[0]", "merge key (<<) takes a mapping"},
			{2, "rules[0].protocol", "is required"},
			{2, "rules[0].external_port", "is required"},
		}},
		{"every error reported", "gateway:\n  backend: x\nrules:\n  - name: A\n    protocol: tcp\n    external_port: 0\n  - name: b\n    protocol: udp\n    external_port: 10-1\n", []want{
			{2, "gateway.backend", "unknown backend"},
			{4, "rules[0].name", "invalid name"},
			{6, "rules[0].external_port", "port 0"},
			{9, "rules[1].external_port", "reversed range"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := load(t, tt.src)
			if err == nil {
				t.Fatalf("loaded without error: %+v", cfg)
			}
			if cfg != nil {
				t.Errorf("config %+v returned with an error", cfg)
			}
			checkDiags(t, problems(t, err), tt.want)
		})
	}
}

func TestLoadDefaults(t *testing.T) {
	cfg, warns, err := load(t, "rules:\n  - name: mc\n    service: minecraft-java\n")
	if err != nil || len(warns) > 0 {
		t.Fatal(err, warns)
	}
	wantGW := GatewaySettings{Backend: "auto", Lease: time.Hour}
	if cfg.Gateway != wantGW || cfg.File != "portfwd.yaml" {
		t.Errorf("config = %+v, want gateway %+v", cfg, wantGW)
	}
	want := Rule{Name: "mc", Service: "minecraft-java", Protocols: []Protocol{TCP},
		External: PortRange{25565, 25565}, Internal: PortRange{25565, 25565},
		InternalHost: "self", Probe: "minecraft-java", Line: 2, Families: []Family{IPv4}}
	if !reflect.DeepEqual(cfg.Rules, []Rule{want}) {
		t.Errorf("rules = %+v\nwant %+v", cfg.Rules, want)
	}
}

func TestLoadProbeServer(t *testing.T) {
	cfg, _, err := load(t, "probe_server:\n  url: https://vps.example:8443\n  token: s3cret\nrules: []\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := (ProbeServer{URL: "https://vps.example:8443", Token: "s3cret"}); cfg.ProbeServer != want {
		t.Errorf("probe server = %+v, want %+v", cfg.ProbeServer, want)
	}
}

func TestLoadRules(t *testing.T) {
	nas := netip.MustParseAddr("192.168.1.20")
	tests := []struct {
		name string
		src  string // one rule's keys, indented under "- "
		want Rule
	}{
		{"explicit keys override the service", "name: mc\n    service: minecraft-java\n    external_port: 25566\n    protocol: both",
			Rule{Protocols: []Protocol{TCP, UDP}, External: PortRange{25566, 25566}, Internal: PortRange{25566, 25566}, Probe: "minecraft-java"}},
		{"probe falls back when the protocol changes", "name: mc\n    service: minecraft-java\n    protocol: udp",
			Rule{Protocols: []Protocol{UDP}, External: PortRange{25565, 25565}, Internal: PortRange{25565, 25565}, Probe: "udp"}},
		{"probe: overrides the service's probe", "name: web\n    service: plex\n    probe: tcp",
			Rule{Protocols: []Protocol{TCP}, External: PortRange{32400, 32400}, Internal: PortRange{32400, 32400}, Probe: "tcp"}},
		{"a2s service on both", "name: cs\n    service: cs2",
			Rule{Protocols: []Protocol{TCP, UDP}, External: PortRange{27015, 27015}, Internal: PortRange{27015, 27015}, Probe: "a2s"}},
		{"a2s service on tcp only", "name: cs\n    service: cs2\n    protocol: tcp",
			Rule{Protocols: []Protocol{TCP}, External: PortRange{27015, 27015}, Internal: PortRange{27015, 27015}, Probe: "tcp"}},
		{"service range", "name: v\n    service: VALHEIM\n    internal_port: 3456-3457",
			Rule{Protocols: []Protocol{UDP}, External: PortRange{2456, 2457}, Internal: PortRange{3456, 3457}, Probe: "a2s"}},
		{"plain udp", "name: x\n    protocol: UDP\n    external_port: '2000'",
			Rule{Protocols: []Protocol{UDP}, External: PortRange{2000, 2000}, Internal: PortRange{2000, 2000}, Probe: "udp"}},
		{"both", "name: x\n    protocol: both\n    external_port: 2000-2001\n    description: voice",
			Rule{Protocols: []Protocol{TCP, UDP}, External: PortRange{2000, 2001}, Internal: PortRange{2000, 2001}, Probe: "tcp", Description: "voice"}},
		{"hostname", "name: x\n    protocol: tcp\n    external_port: 2000\n    internal_host: nas.lan",
			Rule{Protocols: []Protocol{TCP}, External: PortRange{2000, 2000}, Internal: PortRange{2000, 2000}, Probe: "tcp", InternalHost: "nas.lan", InternalAddr: nas}},
		{"hostname with an IPv6 address too", "name: x\n    protocol: tcp\n    external_port: 2000\n    internal_host: mixed.lan",
			Rule{Protocols: []Protocol{TCP}, External: PortRange{2000, 2000}, Internal: PortRange{2000, 2000}, Probe: "tcp", InternalHost: "mixed.lan", InternalAddr: netip.MustParseAddr("192.168.1.30")}},
		{"literal", "name: x\n    protocol: tcp\n    external_port: 2000\n    internal_host: 192.168.1.20",
			Rule{Protocols: []Protocol{TCP}, External: PortRange{2000, 2000}, Internal: PortRange{2000, 2000}, Probe: "tcp", InternalHost: "192.168.1.20", InternalAddr: nas}},
		{"dual hostname takes one address of each family", "name: x\n    protocol: tcp\n    external_port: 2000\n    family: dual\n    internal_host: dual.lan",
			Rule{Protocols: []Protocol{TCP}, External: PortRange{2000, 2000}, Internal: PortRange{2000, 2000}, Probe: "tcp", InternalHost: "dual.lan",
				InternalAddr: netip.MustParseAddr("192.168.1.40"), InternalAddr6: netip.MustParseAddr("2a02:8000:77:1::40"), Families: []Family{IPv4, IPv6}}},
		{"IPv6 literal on an IPv6 rule", "name: x\n    protocol: tcp\n    external_port: 2000\n    family: IPv6\n    internal_host: 2a02:8000:77:1::10",
			Rule{Protocols: []Protocol{TCP}, External: PortRange{2000, 2000}, Internal: PortRange{2000, 2000}, Probe: "tcp", InternalHost: "2a02:8000:77:1::10",
				InternalAddr6: netip.MustParseAddr("2a02:8000:77:1::10"), Families: []Family{IPv6}}},
		{"self in capitals", "name: x\n    protocol: tcp\n    external_port: 2000\n    internal_host: SELF",
			Rule{Protocols: []Protocol{TCP}, External: PortRange{2000, 2000}, Internal: PortRange{2000, 2000}, Probe: "tcp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := load(t, "rules:\n  - "+tt.src+"\n")
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.Rules[0]
			got.Name, got.Service, got.Line = "", "", 0
			if tt.want.InternalHost == "" {
				tt.want.InternalHost = "self"
			}
			if tt.want.Families == nil {
				tt.want.Families = []Family{IPv4}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("rule = %+v\nwant   %+v", got, tt.want)
			}
		})
	}
}

func TestLoadGateway(t *testing.T) {
	tests := []struct {
		src  string
		want GatewaySettings
	}{
		{"gateway:\n", GatewaySettings{Backend: "auto", Lease: time.Hour}},
		{"gateway:\n  lease: 0\n", GatewaySettings{Backend: "auto"}},
		{"gateway:\n  lease: 3600\n", GatewaySettings{Backend: "auto", Lease: time.Hour}},
		{"gateway:\n  lease: 90m\n  backend: pcp\n  address: 192.168.0.1\n", GatewaySettings{Backend: "pcp", Address: "192.168.0.1", Lease: 90 * time.Minute}},
		{"gateway:\n  backend: iptables\n  address: ''\n", GatewaySettings{Backend: "iptables", Lease: time.Hour}},
		{"gateway:\n  backend: iptables\n  wan_interface: ppp0\n  hairpin: true\n", GatewaySettings{Backend: "iptables", Lease: time.Hour, WANInterface: "ppp0", Hairpin: true}},
	}
	for _, tt := range tests {
		cfg, _, err := load(t, tt.src+"rules: []\n")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Gateway != tt.want || cfg.Rules == nil && len(cfg.Rules) != 0 {
			t.Errorf("%q: gateway = %+v, want %+v", tt.src, cfg.Gateway, tt.want)
		}
	}
}

func TestLoadMergeKeys(t *testing.T) {
	src := `defaults: &game {protocol: udp, internal_host: nas.lan}
rules:
  - <<: *game
    name: a
    external_port: 2000
  - <<: [*game]
    name: b
    protocol: tcp
    external_port: 2000
`
	// "defaults" is not a known key; the anchor must live somewhere, so the
	// rules merge from inside the list instead.
	src = strings.Replace(src, "defaults: &game {protocol: udp, internal_host: nas.lan}\nrules:\n  - <<: *game",
		"rules:\n  - <<: &game {protocol: udp, internal_host: nas.lan}", 1)
	cfg, _, err := load(t, src)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := cfg.Rule("a")
	b, _ := cfg.Rule("b")
	if a.Protocols[0] != UDP || b.Protocols[0] != TCP || !a.InternalAddr.IsValid() || b.InternalHost != "nas.lan" {
		t.Errorf("merged rules: %+v %+v", a, b)
	}
}

func TestLoadSelfReferentialAnchor(t *testing.T) {
	// An anchor may name a node that contains it; merging it must stop.
	_, _, err := load(t, "rules:\n  - &r\n    name: a\n    <<: *r\n")
	if err == nil {
		t.Fatal("want an error")
	}
}

func TestDesired(t *testing.T) {
	self := netip.MustParseAddr("192.168.1.10")
	cfg, _, err := load(t, `gateway:
  lease: 30m
rules:
  - name: voice
    protocol: both
    external_port: 3000-3001
    internal_port: 4000-4001
  - name: web
    protocol: tcp
    external_port: 2000
    internal_host: nas.lan
`)
	if err != nil {
		t.Fatal(err)
	}
	nas := netip.MustParseAddr("192.168.1.20")
	m := func(p Protocol, ext uint16, host netip.Addr, in uint16, rule string) Mapping {
		return Mapping{Key: Key{Protocol: p, ExternalPort: ext}, InternalHost: host, InternalPort: in, Description: Tag("portfwd", rule), Lease: 30 * time.Minute, Enabled: true}
	}
	want := []Mapping{
		m(TCP, 2000, nas, 2000, "web"),
		m(TCP, 3000, self, 4000, "voice"),
		m(TCP, 3001, self, 4001, "voice"),
		m(UDP, 3000, self, 4000, "voice"),
		m(UDP, 3001, self, 4001, "voice"),
	}
	if got := cfg.Desired(Hosts{Self: self}, Properties{}); !reflect.DeepEqual(got, want) {
		t.Errorf("Desired =\n%v\nwant\n%v", got, want)
	}
	if got := (&Config{}).Desired(Hosts{Self: self}, Properties{}); len(got) != 0 {
		t.Errorf("empty config: Desired = %v", got)
	}
}

// testSelf is the address "self" stands for in the tests below.
var testSelf = netip.MustParseAddr("192.168.1.10")

func TestDesiredHairpin(t *testing.T) {
	cfg, _, err := load(t, `rules:
  - name: mc
    service: minecraft-java
    hairpin: true
  - name: ssh
    service: ssh
`)
	if err != nil {
		t.Fatal(err)
	}
	hairpins := func(cfg *Config, p Properties) map[string]bool {
		out := map[string]bool{}
		for _, m := range cfg.Desired(Hosts{Self: testSelf}, p) {
			out[m.Owner()] = m.Hairpin
		}
		return out
	}
	if got := hairpins(cfg, Properties{Hairpin: true}); !got["mc"] || got["ssh"] {
		t.Errorf("rule hairpin on a hairpin backend: %v, want mc only", got)
	}
	if got := hairpins(cfg, Properties{}); got["mc"] {
		t.Errorf("a backend without hairpin was asked for it: %v", got)
	}
	cfg.Gateway.Hairpin = true
	if got := hairpins(cfg, Properties{Hairpin: true}); !got["mc"] || !got["ssh"] {
		t.Errorf("gateway hairpin: %v, want every rule", got)
	}
}

func TestOwnership(t *testing.T) {
	nas := netip.MustParseAddr("192.168.1.20")
	cfg := &Config{Rules: []Rule{{Name: "a"}, {Name: "b", InternalAddr: nas}}}
	got := cfg.Ownership(Hosts{Self: testSelf}, Properties{})
	if !reflect.DeepEqual(got.Hosts, []netip.Addr{testSelf, nas}) || got.AnyHost {
		t.Errorf("Ownership = %+v", got)
	}
	if !cfg.Ownership(Hosts{Self: testSelf}, Properties{Local: true}).AnyHost {
		t.Errorf("a local gateway's ownership is not AnyHost")
	}
}

func TestDesiredLocalHasNoLease(t *testing.T) {
	cfg := &Config{Gateway: GatewaySettings{Lease: time.Hour}, Rules: []Rule{{Name: "a", Protocols: []Protocol{TCP}, External: PortRange{80, 80}, Internal: PortRange{80, 80}}}}
	if got := cfg.Desired(Hosts{Self: testSelf}, Properties{}); got[0].Lease != time.Hour {
		t.Errorf("lease over a gateway: %v, want 1h", got[0].Lease)
	}
	if got := cfg.Desired(Hosts{Self: testSelf}, Properties{Local: true}); got[0].Lease != 0 {
		t.Errorf("lease on this machine: %v, want 0", got[0].Lease)
	}
}

func TestConfigRule(t *testing.T) {
	cfg := &Config{Rules: []Rule{{Name: "a"}, {Name: "b", Line: 7}}}
	if r, ok := cfg.Rule("b"); !ok || r.Line != 7 {
		t.Errorf(`Rule("b") = %+v, %v`, r, ok)
	}
	if _, ok := cfg.Rule("c"); ok {
		t.Error(`Rule("c") found`)
	}
}

func TestDiagnosticString(t *testing.T) {
	tests := []struct {
		d    Diagnostic
		want string
	}{
		{Diagnostic{"portfwd.yaml", 7, "rules[1].external_port", "port 70000 is out of range 1-65535"}, "portfwd.yaml:7: rules[1].external_port: port 70000 is out of range 1-65535"},
		{Diagnostic{"portfwd.yaml", 1, "", "the file is empty"}, "portfwd.yaml:1: the file is empty"},
		{Diagnostic{"portfwd.yaml", 0, "rules", "x"}, "portfwd.yaml: rules: x"},
	}
	for _, tt := range tests {
		if got := tt.d.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
	e := &ConfigError{Problems: []Diagnostic{tests[0].d, tests[1].d}}
	if got, want := e.Error(), tests[0].want+"\n"+tests[1].want; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestValidateGateway(t *testing.T) {
	tests := []struct {
		g    GatewaySettings
		want string // "" for valid
	}{
		{GatewaySettings{Backend: "auto", Lease: time.Hour}, ""},
		{GatewaySettings{Backend: "upnp", Address: "10.0.0.1"}, ""},
		{GatewaySettings{Backend: "", Lease: time.Hour}, `gateway.backend: unknown backend ""`},
		{GatewaySettings{Backend: "UPnP"}, `did you mean "upnp"?`},
		{GatewaySettings{Backend: "auto", Address: "10.0.0.1:80"}, "gateway.address: \"10.0.0.1:80\" has a port"},
		{GatewaySettings{Backend: "auto", Address: "::1"}, "is not an IPv4 address"},
		{GatewaySettings{Backend: "pcp", Address: "2a02:8000:77:1::1"}, ""},
		{GatewaySettings{Backend: "pcp", Address: "fe80::1%eth0"}, ""},
		{GatewaySettings{Backend: "pcp", Address: "fe80::1"}, "is link-local: add the interface it is on, like fe80::1%eth0"},
		{GatewaySettings{Backend: "natpmp", Address: "2a02:8000:77:1::1"}, "only backend pcp takes the router's IPv6 address"},
		{GatewaySettings{Backend: "auto", Lease: -time.Second}, "gateway.lease: lease -1s is negative"},
		{GatewaySettings{Backend: "iptables", WANInterface: "eth0.100"}, ""},
		{GatewaySettings{Backend: "iptables", WANInterface: "wan 0"}, "gateway.wan_interface"},
	}
	for _, tt := range tests {
		err := ValidateGateway(tt.g)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: %v", tt.g, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%+v: error %v, want %q", tt.g, err, tt.want)
		}
	}
}

func TestLoadFile(t *testing.T) {
	ctx := context.Background()
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	_, _, err := LoadFile(ctx, missing, LoadOptions{LookupHost: fakeLookup})
	var ce *ConfigError
	if err == nil || errors.As(err, &ce) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	file := filepath.Join("testdata", "valid", "minecraft.yaml")
	cfg, _, err := LoadFile(ctx, file, LoadOptions{LookupHost: fakeLookup})
	if err != nil || cfg.File != file {
		t.Fatalf("LoadFile: %v, %+v", err, cfg)
	}
}

// TestTestdata loads every example. Each invalid one starts with
// "# want: <line>: <key>: <message part>", matched against
// Diagnostic.String() without the file name; the CLI tests reuse them.
func TestTestdata(t *testing.T) {
	valid, _ := filepath.Glob("testdata/valid/*.yaml")
	for _, file := range valid {
		t.Run(file, func(t *testing.T) {
			if _, _, err := LoadFile(context.Background(), file, LoadOptions{LookupHost: fakeLookup}); err != nil {
				t.Error(err)
			}
		})
	}
	invalid, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(invalid) < 12 {
		t.Errorf("only %d invalid examples", len(invalid))
	}
	for _, file := range invalid {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(data), "\n")
			wantText, ok := strings.CutPrefix(first, "# want: ")
			if !ok {
				t.Fatalf("first line %q is not a # want: header", first)
			}
			_, _, err = Load(context.Background(), file, data, LoadOptions{LookupHost: fakeLookup})
			line, _, _ := strings.Cut(wantText, ": ")
			for _, d := range problems(t, err) {
				// "7: rules[0].name: message": the line exactly, the rest a substring.
				got := strings.TrimPrefix(d.String(), file+":")
				if strings.HasPrefix(got, line+": ") && strings.Contains(got, wantText) {
					return
				}
			}
			t.Errorf("no diagnostic matches %q; got %v", wantText, err)
		})
	}
}
