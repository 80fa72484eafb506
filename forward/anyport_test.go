package forward

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestLoadAnyExternal(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want PortRange
	}{
		{"internal port", rule + "    external_port: any\n    internal_port: 25565\n", PortRange{25565, 25565}},
		{"any case", rule + "    external_port: ANY\n    internal_port: 25565\n", PortRange{25565, 25565}},
		{"from the service", "rules:\n  - name: mc\n    service: minecraft-java\n    external_port: Any\n", PortRange{25565, 25565}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, warns, err := load(t, tt.src)
			if err != nil {
				t.Fatal(err)
			}
			r := cfg.Rules[0]
			if !r.AnyExternal || r.External != tt.want || r.Internal != tt.want {
				t.Errorf("rule = any %v, %v -> %v; want any, %v -> %v", r.AnyExternal, r.External, r.Internal, tt.want, tt.want)
			}
			if len(warns) != 0 {
				t.Errorf("warnings: %v", warns)
			}
		})
	}
}

func TestLoadAnyExternalErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []want
	}{
		{"no internal port", rule + "    external_port: any\n", []want{{4, "rules[0].external_port", "external_port: any needs internal_port"}}},
		{"internal range", rule + "    external_port: any\n    internal_port: 2456-2458\n",
			[]want{{4, "rules[0].external_port", "external_port: any takes a single port, but the internal port is the range 2456-2458"}}},
		{"service range", "rules:\n  - name: v\n    service: 7-days-to-die\n    external_port: any\n",
			[]want{{4, "rules[0].external_port", "takes a single port, but the internal port is the range 26900-26902"}}},
		{"bad internal port", rule + "    external_port: any\n    internal_port: 0\n", []want{{5, "rules[0].internal_port", "out of range"}}},
		{"unknown service", "rules:\n  - name: v\n    service: nope\n    external_port: any\n", []want{{3, "rules[0].service", `unknown service "nope"`}}},
		{"suggested port claimed by another rule", rule + "    external_port: 25565\n  - name: b\n    protocol: tcp\n    external_port: any\n    internal_port: 25565\n",
			[]want{{7, "rules[1].external_port", "already claimed"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := load(t, tt.src)
			checkDiags(t, problems(t, err), tt.want)
		})
	}
}

func TestLoadAnyExternalWarnsOnlyOfRiskyPorts(t *testing.T) {
	_, warns, err := load(t, rule+"    external_port: any\n    internal_port: 3389\n")
	if err != nil {
		t.Fatal(err)
	}
	checkDiags(t, warns, []want{{4, "rules[0].external_port", "RDP"}})
}

func TestDesiredAnyExternal(t *testing.T) {
	cfg, _, err := load(t, "rules:\n  - name: mc\n    protocol: both\n    external_port: any\n    internal_port: 25565\n")
	if err != nil {
		t.Fatal(err)
	}
	self := netip.MustParseAddr("192.168.1.10")
	m := func(p Protocol) Mapping {
		return Mapping{Key: Key{Protocol: p, ExternalPort: 25565}, InternalHost: self, InternalPort: 25565, Description: Tag("portfwd", "mc"),
			Lease: time.Hour, Enabled: true, AnyExternal: true}
	}
	if got, want := cfg.Desired(Hosts{Self: self}, Properties{}), []Mapping{m(TCP), m(UDP)}; !reflect.DeepEqual(got, want) {
		t.Errorf("Desired = %v, want %v", got, want)
	}
}
