package forward

import "testing"

func TestLoadWarnings(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []want
	}{
		{"ordinary port", "rules:\n  - name: mc\n    service: minecraft-java\n", nil},
		{"below 1024", "rules:\n  - name: web\n    protocol: tcp\n    external_port: 8080-8081\n  - name: ssh\n    service: ssh\n", []want{
			{6, "rules[1].service", "external port 22 is below 1024: many gateways refuse ports below 1024; miniupnpd allows 1024-65535 by default"},
		}},
		{"dynamic range", "rules:\n  - name: x\n    protocol: udp\n    external_port: 50000\n", []want{
			{4, "rules[0].external_port", "external port 50000 is in the dynamic range 49152-65535"},
		}},
		{"dynamic range ok for the service's own port", "rules:\n  - name: wg\n    service: wireguard\n", nil},
		{"dynamic range, service moved", "rules:\n  - name: wg\n    service: wireguard\n    external_port: 51821\n", []want{
			{4, "rules[0].external_port", "dynamic range"},
		}},
		{"RDP", "rules:\n  - name: rdp\n    protocol: tcp\n    external_port: 3389\n", []want{
			{4, "rules[0].external_port", "port 3389 is RDP, dangerous to expose to the internet"},
		}},
		{"RDP behind another port", "rules:\n  - name: rdp\n    protocol: tcp\n    external_port: 13389\n    internal_port: 3389\n", []want{
			{5, "rules[0].internal_port", "reach it over a VPN such as WireGuard instead"},
		}},
		{"telnet", "rules:\n  - name: t\n    protocol: tcp\n    external_port: 23\n", []want{
			{4, "rules[0].external_port", "below 1024"},
			{4, "rules[0].external_port", "telnet, dangerous to expose"},
		}},
		{"range over VNC and Docker", "rules:\n  - name: r\n    protocol: tcp\n    external_port: 2370-2380\n    internal_port: 5895-5905\n", []want{
			{4, "rules[0].external_port", "port 2375-2376 is the Docker API"},
			{5, "rules[0].internal_port", "port 5900-5901 is VNC"},
		}},
		{"databases", "rules:\n  - {name: a, protocol: tcp, external_port: 3306}\n  - {name: b, protocol: tcp, external_port: 5432}\n  - {name: c, protocol: tcp, external_port: 6379}\n  - {name: d, protocol: tcp, external_port: 27017}\n  - {name: e, protocol: tcp, external_port: 9200}\n  - {name: f, protocol: udp, external_port: 11211}\n  - {name: g, protocol: tcp, external_port: 445}\n", []want{
			{2, "rules[0].external_port", "MySQL"},
			{3, "rules[1].external_port", "PostgreSQL"},
			{4, "rules[2].external_port", "Redis"},
			{5, "rules[3].external_port", "MongoDB"},
			{6, "rules[4].external_port", "Elasticsearch"},
			{7, "rules[5].external_port", "memcached"},
			{8, "rules[6].external_port", "SMB"},
			{8, "rules[6].external_port", "below 1024"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, warns, err := load(t, tt.src)
			if err != nil {
				t.Fatal(err)
			}
			checkDiags(t, warns, tt.want)
		})
	}
}
