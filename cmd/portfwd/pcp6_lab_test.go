package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/internal/lab"
)

// pcpDualRules are a dual rule and an IPv6 one over PCP, and ipv6: false
// leaves the second out.
func pcpDualRules(ipv6 bool) string {
	s := "gateway:\n  backend: pcp\nrules:\n" +
		"  - name: minecraft\n    protocol: tcp\n    external_port: 25565\n    family: dual\n"
	if ipv6 {
		s += "  - name: web\n    protocol: tcp\n    external_port: 8080\n    family: ipv6\n"
	}
	return s
}

// fromWAN6 connects from the internet side to the LAN host's own IPv6
// address and returns what it answered.
func fromWAN6(l *lab.Lab, port uint16) (string, error) {
	return l.ExchangeFrom(lab.WAN, "tcp", netip.AddrPortFrom(l.LANHost6, port).String(), "ping")
}

// TestLabPCPIPv6: PCP opens pinholes over IPv6 in miniupnpd's firewall.
// Before the apply the WAN host cannot reach the LAN host over IPv6; after
// it, the dual rule answers on the router's IPv4 address and on the LAN
// host's IPv6 address, and the IPv6 rule on the latter; a re-apply sends
// no MAP; removing a rule closes its pinhole and leaves the others; down
// closes the rest.
func TestLabPCPIPv6(t *testing.T) {
	l := lab.ForTest(t, lab.Options{IPv6: true})
	l.Serve(t, lab.LAN, "tcp", 25565, "minecraft on lan") // [::]:25565, IPv4 too
	l.Serve(t, lab.LAN, "tcp", 8080, "web on lan")
	if got, err := fromWAN6(l, 25565); err == nil {
		t.Fatalf("the WAN host reached the LAN host over IPv6 before any pinhole: %q", got)
	}
	cfg := writeConfig(t, pcpDualRules(true))
	r := portfwd(t, l, "apply", "--no-probe", "-o", "json", cfg)
	if doc := decode[applyDoc](t, r.stdout); r.code != exitOK || doc.Summary["create"] != 3 || doc.Gateway.Backend != "pcp" {
		t.Fatalf("apply: exit %d, %+v\n%s", r.code, doc, r.stderr)
	}
	if strings.Contains(r.stderr, "translates IPv6") {
		t.Errorf("the pinhole was granted on another address than the LAN host's:\n%s", r.stderr)
	}
	reachable(t, l, map[string]bool{"v4/25565": true, "v6/25565": true, "v6/8080": true})
	made := pcpMaps(l)
	if made < 3 {
		t.Fatalf("miniupnpd logged %d MAP requests for three mappings; the count is wrong", made)
	}
	if r := portfwd(t, l, "apply", "--no-probe", cfg); r.code != exitOK || pcpMaps(l) != made {
		t.Errorf("re-apply: exit %d, %d more MAP requests; want 0\n%s", r.code, pcpMaps(l)-made, r.stderr)
	}
	less := writeConfig(t, pcpDualRules(false))
	r = portfwd(t, l, "apply", "--no-probe", "-o", "json", less)
	if doc := decode[applyDoc](t, r.stdout); r.code != exitOK || doc.Summary["delete"] != 1 {
		t.Errorf("removing the IPv6 rule: exit %d, %v\n%s", r.code, doc.Summary, r.stderr)
	}
	reachable(t, l, map[string]bool{"v4/25565": true, "v6/25565": true, "v6/8080": false})
	if r := portfwd(t, l, "down", less); r.code != exitOK {
		t.Errorf("down: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	reachable(t, l, map[string]bool{"v4/25565": false, "v6/25565": false, "v6/8080": false})
}

// reachable checks which of the LAN host's servers the WAN host reaches:
// "v4/25565" through the router's IPv4 address, "v6/8080" at the LAN
// host's IPv6 address.
func reachable(t *testing.T, l *lab.Lab, want map[string]bool) {
	t.Helper()
	for what, open := range want {
		var got string
		var err error
		switch what {
		case "v4/25565":
			got, err = fromWAN(l, "tcp", 25565)
		case "v6/25565":
			got, err = fromWAN6(l, 25565)
		case "v6/8080":
			got, err = fromWAN6(l, 8080)
		}
		if open && (err != nil || !strings.Contains(got, "on lan")) {
			t.Errorf("%s from the WAN host: %q, %v; want the server", what, got, err)
		}
		if !open && err == nil {
			t.Errorf("%s from the WAN host: reached (%q); want it closed", what, got)
		}
	}
}
