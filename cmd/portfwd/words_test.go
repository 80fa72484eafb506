package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestStatusLeaseColumnHoldsTheLease: hairpin and disabled are notes of
// their own, not words appended to the lease.
func TestStatusLeaseColumnHoldsTheLease(t *testing.T) {
	var out bytes.Buffer
	p := &printer{io: IOStreams{Out: &out, ErrOut: &bytes.Buffer{}}}
	doc := statusDoc{Config: "router.yaml", Gateway: gatewayView{Backend: "iptables", URL: "iptables://localhost/wan0", Protocols: []string{"iptables-nft"}},
		Mappings: []statusMapping{
			{mappingView: mappingView{Protocol: "tcp", ExternalPort: 25565, InternalHost: "192.168.1.20", InternalPort: 25565, Description: "portfwd:minecraft", Enabled: true, Hairpin: true, Rule: "minecraft"}, Ownership: "owned"},
			{mappingView: mappingView{Protocol: "udp", ExternalPort: 2456, InternalHost: "192.168.1.21", InternalPort: 2456, Description: "portfwd:valheim", LeaseSeconds: 3600, Rule: "valheim"}, Ownership: "owned"},
		}}
	if err := printStatus(p, doc); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"GATEWAY\tiptables://localhost/wan0 (iptables-nft)\n",
		"tcp\t25565\t192.168.1.20:25565\tpermanent\towned\thairpin\tportfwd:minecraft\n",
		"udp\t2456\t192.168.1.21:2456\t1h0m0s\towned\tdisabled\tportfwd:valheim\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status printed\n%s\nwant a line %q", out.String(), want)
		}
	}
}

// TestGatewayWords: the gateway is named by where it is and what it
// speaks, each once.
func TestGatewayWords(t *testing.T) {
	for _, tt := range []struct {
		v    gatewayView
		want string
	}{
		{gatewayView{Backend: "iptables", URL: "iptables://localhost/wan0", Protocols: []string{"iptables-nft"}}, "iptables://localhost/wan0 (iptables-nft)"},
		{gatewayView{Backend: "upnp", URL: "http://192.168.1.1:5000/rootDesc.xml", Protocols: []string{"UPnP IGD:2", "WANIPConnection:2"}},
			"http://192.168.1.1:5000/rootDesc.xml (UPnP IGD:2, WANIPConnection:2)"},
		{gatewayView{Backend: "memory", URL: "memory", Protocols: []string{"memory"}}, "memory"},
	} {
		if got := gatewayWords(tt.v); got != tt.want {
			t.Errorf("gatewayWords(%+v) = %q; want %q", tt.v, got, tt.want)
		}
	}
}
