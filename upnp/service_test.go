package upnp

import "testing"

func TestParseServiceKind(t *testing.T) {
	tests := []struct {
		urn   string
		short string // "" for not a port-mapping service
		pages bool
		max   uint32
	}{
		{"urn:schemas-upnp-org:service:WANIPConnection:2", "WANIPConnection:2", true, maxLeaseV2},
		{"urn:schemas-upnp-org:service:WANIPConnection:1", "WANIPConnection:1", false, 0},
		{" urn:schemas-upnp-org:service:WANPPPConnection:1\n", "WANPPPConnection:1", false, 0},
		{"urn:schemas-upnp-org:service:WANPPPConnection:2", "WANPPPConnection:2", false, maxLeaseV2},
		{"urn:schemas-upnp-org:service:WANIPConnection:3", "WANIPConnection:3", true, maxLeaseV2},
		{"urn:dslforum-org:service:WANIPConnection:1", "dslforum-org:WANIPConnection:1", false, 0},
		{"urn:dslforum-org:service:WANPPPConnection:1", "dslforum-org:WANPPPConnection:1", false, 0},
		{"urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1", "", false, 0},
		{"urn:schemas-upnp-org:service:WANIPConnection:x", "", false, 0},
		{"urn:schemas-upnp-org:service:WANIPConnection:0", "", false, 0},
		{"urn:example-com:service:WANIPConnection:1", "", false, 0},
		{"urn:schemas-upnp-org:service:WANIPConnection", "", false, 0},
	}
	for _, tt := range tests {
		k, ok := parseServiceKind(tt.urn)
		if ok != (tt.short != "") || k.Short != tt.short || k.listsPages() != tt.pages || k.MaxLease != tt.max {
			t.Errorf("parseServiceKind(%q) = %+v, %v; want %q pages %v max %d", tt.urn, k, ok, tt.short, tt.pages, tt.max)
		}
	}
}

func TestServicePreference(t *testing.T) {
	order := []string{
		"urn:schemas-upnp-org:service:WANIPConnection:2",
		"urn:schemas-upnp-org:service:WANIPConnection:1",
		"urn:schemas-upnp-org:service:WANPPPConnection:2",
		"urn:schemas-upnp-org:service:WANPPPConnection:1",
		"urn:dslforum-org:service:WANIPConnection:1",
		"urn:dslforum-org:service:WANPPPConnection:1",
	}
	for i := range order {
		for j := range order {
			a, _ := parseServiceKind(order[i])
			b, _ := parseServiceKind(order[j])
			if got := a.compare(b); (got < 0) != (i < j) || (got == 0) != (i == j) {
				t.Errorf("compare(%s, %s) = %d", a.Short, b.Short, got)
			}
		}
	}
}
