package main

import "testing"

func TestOneOffRule(t *testing.T) {
	tests := []struct {
		arg, name, probe string
		first, last      uint16
		ok               bool
	}{
		{"minecraft-java", "minecraft-java", "minecraft-java", 25565, 25565, true},
		{"valheim", "valheim", "a2s", 2456, 2457, true},
		{"udp/19132", "udp-19132", "udp", 19132, 19132, true},
		{"TCP/22", "tcp-22", "tcp", 22, 22, true},
		{"tcp/0", "", "", 0, 0, false},
		{"tcp/70000", "", "", 0, 0, false},
		{"portfwd.yaml", "", "", 0, 0, false},
	}
	for _, tt := range tests {
		r, ok := oneOffRule(tt.arg)
		if ok != tt.ok || (ok && (r.Name != tt.name || string(r.Probe) != tt.probe || r.External.First != tt.first || r.External.Last != tt.last || r.InternalHost != "self")) {
			t.Errorf("oneOffRule(%q) = %+v, %v", tt.arg, r, ok)
		}
	}
}
