package lab

import (
	"net"
	"strings"
	"testing"
)

// TestLabIPv6Facts proves LAB.md "IPv6 in the lab": the router's firewall
// keeps the WAN host off the LAN host's global address until a pinhole is
// opened, a pinhole asked for through the IPv4 control URL is refused with
// 606 (secure mode), and one asked for through the router's IPv6 control
// URL lets the WAN host in, with its own address (no NAT).
func TestLabIPv6Facts(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Options{IPv6: true})
	listenLAN(t, l, minecraft)
	target := net.JoinHostPort(l.LANHost6.String(), minecraft)
	if _, err := l.ExchangeFrom(WAN, "tcp", target, ""); err == nil {
		t.Fatal("the WAN host reached the LAN host over IPv6 before any pinhole: the router forwards unsolicited IPv6")
	}
	// The LAN host itself reaches its server over IPv6 (the listener is
	// not the reason for the failure above).
	if _, err := l.ExchangeFrom(LAN, "tcp", target, ""); err != nil {
		t.Fatalf("the LAN host cannot reach its own server over IPv6: %v", err)
	}
	pinhole := []string{"-6", "-A", "", "0", l.LANHost6.String(), minecraft, "TCP", "3600"}
	out, err := l.Command(LAN, "upnpc", append([]string{"-u", l.RootDescURL}, pinhole...)...).CombinedOutput()
	if !strings.Contains(string(out), "606") {
		t.Fatalf("upnpc -6 -A through the IPv4 control URL was not refused with 606:\n%s", out)
	}
	if _, err := l.ExchangeFrom(WAN, "tcp", target, ""); err == nil {
		t.Fatal("the WAN host reached the LAN host after a refused pinhole request")
	}
	out, err = l.Command(LAN, "upnpc", append([]string{"-u", l.RootDescURL6}, pinhole...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Pinhole ID = ") {
		t.Fatalf("upnpc -6 -A through %s: %v\n%s", l.RootDescURL6, err, out)
	}
	line, err := l.ExchangeFrom(WAN, "tcp", target, "")
	if err != nil {
		t.Fatalf("dialing the pinhole from the WAN host: %v\nupnpc said:\n%s", err, out)
	}
	if want := "(you are [" + l.WANHost6.String() + "]:"; !strings.Contains(line, want) {
		t.Errorf("greeting = %q, want it to contain %q", line, want)
	}
}
