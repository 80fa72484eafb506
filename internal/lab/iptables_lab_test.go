package lab

import (
	"context"
	"net"
	"strings"
	"testing"
)

// TestLabIptablesIPv6Facts proves the iptables router's IPv6 firewall, in
// each flavour it can be loaded in: the WAN host cannot reach the LAN
// host's global address, the LAN host reaches the WAN host's (its
// connections out and their answers pass), and the DROP is in the loaded
// flavour's tables alone, so a backend of that flavour decides what else
// passes.
func TestLabIptablesIPv6Facts(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		flavour, other := "nft", "legacy"
		if legacy {
			flavour, other = other, flavour
		}
		t.Run(flavour, func(t *testing.T) {
			l := ForTest(t, Options{Iptables: true, IPv6: true, IptablesLegacy: legacy})
			listenLAN(t, l, minecraft)
			l.Serve(t, WAN, "tcp", 8080, "hello from wan")
			if got, err := l.ExchangeFrom(WAN, "tcp", net.JoinHostPort(l.LANHost6.String(), minecraft), ""); err == nil {
				t.Errorf("the WAN host reached the LAN host over IPv6: %q", got)
			}
			if _, err := l.ExchangeFrom(LAN, "tcp", net.JoinHostPort(l.LANHost6.String(), minecraft), ""); err != nil {
				t.Errorf("the LAN host cannot reach its own server over IPv6: %v", err)
			}
			if got, err := l.ExchangeFrom(LAN, "tcp", net.JoinHostPort(l.WANHost6.String(), "8080"), ""); err != nil || !strings.Contains(got, "(you are ["+l.LANHost6.String()+"]:") {
				t.Errorf("the LAN host to the WAN host over IPv6: %q, %v; want through, with its own address", got, err)
			}
			for save, want := range map[string]bool{"ip6tables-" + flavour + "-save": true, "ip6tables-" + other + "-save": false} {
				s, err := l.SaveTables(context.Background(), save)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(s, ":FORWARD DROP") != want {
					t.Errorf("%s holds the FORWARD DROP: %v, want %v:\n%s", save, !want, want, s)
				}
			}
		})
	}
}
