package forward

import (
	"slices"
	"strings"
	"testing"
)

func TestCatalog(t *testing.T) {
	services := Services()
	if !slices.IsSortedFunc(services, func(a, b Service) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("Services() is not sorted by name")
	}
	seen := make(map[string]bool)
	for _, s := range services {
		if seen[s.Name] {
			t.Errorf("%s: listed twice", s.Name)
		}
		seen[s.Name] = true
		if !namePattern.MatchString(s.Name) || len(s.Name) > maxNameLen {
			t.Errorf("%s: not a valid name", s.Name)
		}
		if s.Ports.Len() == 0 || s.Ports.First == 0 {
			t.Errorf("%s: invalid ports %v", s.Name, s.Ports)
		}
		if len(s.Protocols) == 0 {
			t.Errorf("%s: no protocols", s.Name)
		}
		if !s.Probe.Known() || !slices.Contains(s.Protocols, s.Probe.Network()) {
			t.Errorf("%s: probe %q cannot run over %v", s.Name, s.Probe, s.Protocols)
		}
		if s.Description == "" || strings.HasSuffix(s.Description, ".") {
			t.Errorf("%s: description %q: want a short phrase", s.Name, s.Description)
		}
		if got, ok := LookupService(s.Name); !ok || got.Name != s.Name {
			t.Errorf("LookupService(%q) = %v, %v", s.Name, got, ok)
		}
	}
}

func TestCatalogEntries(t *testing.T) {
	tcp, udp, both := []Protocol{TCP}, []Protocol{UDP}, []Protocol{TCP, UDP}
	tests := []struct {
		name  string
		proto []Protocol
		ports string
		probe string
	}{
		{"ssh", tcp, "22", "tcp"},
		{"http", tcp, "80", "http"},
		{"https", tcp, "443", "https"},
		{"minecraft-java", tcp, "25565", "minecraft-java"},
		{"minecraft-bedrock", udp, "19132", "minecraft-bedrock"},
		{"valheim", udp, "2456-2457", "a2s"},
		{"terraria", tcp, "7777", "tcp"},
		{"factorio", udp, "34197", "udp"},
		{"plex", tcp, "32400", "http"},
		{"palworld", udp, "8211", "udp"},
		{"rust", udp, "28015", "udp"},
		{"cs2", both, "27015", "a2s"},
		{"teamspeak", udp, "9987", "udp"},
		{"mumble", both, "64738", "tcp"},
		{"wireguard", udp, "51820", "udp"},
		{"jellyfin", tcp, "8096", "http"},
		{"home-assistant", tcp, "8123", "http"},
		{"openvpn", udp, "1194", "udp"},
		{"syncthing", both, "22000", "tcp"},
		{"enshrouded", udp, "15636-15637", "a2s"},
		{"project-zomboid", udp, "16261-16262", "udp"},
	}
	for _, tt := range tests {
		s, ok := LookupService(tt.name)
		if !ok {
			t.Errorf("%s: missing", tt.name)
			continue
		}
		if !slices.Equal(s.Protocols, tt.proto) || s.Ports.String() != tt.ports || string(s.Probe) != tt.probe {
			t.Errorf("%s = %v %v %s, want %v %s %s", tt.name, s.Protocols, s.Ports, s.Probe, tt.proto, tt.ports, tt.probe)
		}
	}
}

func TestLookupService(t *testing.T) {
	if _, ok := LookupService("nope"); ok {
		t.Error(`LookupService("nope") found`)
	}
	if s, ok := LookupService(" Minecraft-Java "); !ok || s.Name != "minecraft-java" {
		t.Errorf("case-insensitive lookup: %v %v", s, ok)
	}
	// Callers may not change the catalog through what they are given.
	s, _ := LookupService("cs2")
	s.Protocols[0] = "sctp"
	Services()[0].Protocols[0] = "sctp"
	if again, _ := LookupService("cs2"); again.Protocols[0] != TCP {
		t.Error("LookupService shares the catalog's slices")
	}
	if Services()[0].Protocols[0] == "sctp" {
		t.Error("Services shares the catalog's slices")
	}
}
