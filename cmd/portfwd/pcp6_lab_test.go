package main

import (
	"strings"
	"testing"
	"time"

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
	wantReachable(t, l, map[string]bool{"v4/25565": true, "v6/25565": true, "v6/8080": true})
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
	wantReachable(t, l, map[string]bool{"v4/25565": true, "v6/25565": true, "v6/8080": false})
	if r := portfwd(t, l, "down", less); r.code != exitOK {
		t.Errorf("down: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	wantReachable(t, l, map[string]bool{"v4/25565": false, "v6/25565": false, "v6/8080": false})
	// The router's IPv6 address as gateway.address: the pinholes are asked
	// there, the forwards of the IPv4 default gateway.
	gw := "--gateway=" + l.RouterLAN6.String()
	if r := portfwd(t, l, "apply", "--no-probe", gw, less); r.code != exitOK {
		t.Errorf("apply %s: exit %d\n%s%s", gw, r.code, r.stdout, r.stderr)
	}
	wantReachable(t, l, map[string]bool{"v4/25565": true, "v6/25565": true})
	if r := portfwd(t, l, "down", gw, less); r.code != exitOK {
		t.Errorf("down %s: exit %d\n%s%s", gw, r.code, r.stdout, r.stderr)
	}
	wantReachable(t, l, map[string]bool{"v4/25565": false, "v6/25565": false})
}

// wantReachable checks which of the LAN host's servers the WAN host reaches:
// "v4/25565" through the router's IPv4 address, "v6/8080" at the LAN
// host's IPv6 address.
func wantReachable(t *testing.T, l *lab.Lab, want map[string]bool) {
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

// TestLabDaemonPCPIPv6Reboot: the daemon keeps a dual rule over PCP; after
// a router reboot, which loses the pinhole, the IPv6 server's epoch shows
// the restart and the pinhole is back within 10 s.
func TestLabDaemonPCPIPv6Reboot(t *testing.T) {
	l := lab.ForTest(t, lab.Options{IPv6: true})
	l.Serve(t, lab.LAN, "tcp", 25565, "minecraft on lan")
	d := startDaemon(t, l, writeConfig(t, "gateway: {backend: pcp, lease: 1h}\nrules:\n  - name: minecraft\n    service: minecraft-java\n    family: dual\n"))
	d.waitLog(t, "created minecraft tcp6/25565", 1, 15*time.Second)
	waitReachable6(t, l, 25565, 5*time.Second)
	// The router has been up a few seconds by now: its restart shows as
	// the epoch going backwards (RFC 6887 §8.5).
	time.Sleep(3 * time.Second)
	if err := l.Reboot(t.Context()); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	back := waitReachable6(t, l, 25565, 30*time.Second) // a hang detector
	t.Logf("pinhole restored %v after the router was back", back.Sub(up).Round(time.Millisecond))
	if back.Sub(up) > 10*time.Second {
		t.Errorf("the pinhole came back after %v, want within 10s", back.Sub(up))
	}
	if !strings.Contains(d.log.String(), "the gateway restarted (PCP epoch over IPv6") {
		t.Errorf("the log does not show the restart:\n%s", d.log.String())
	}
	if code := d.stop(t); code != 0 {
		t.Errorf("daemon exit %d after SIGTERM, want 0", code)
	}
}

// waitReachable6 waits until the WAN host reaches the LAN host's server on
// port over IPv6, and returns when.
func waitReachable6(t *testing.T, l *lab.Lab, port int, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got, err := fromWAN6(l, port)
		if err == nil && strings.Contains(got, "on lan") {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("[%v]:%d not reachable from the WAN within %v: %q, %v", l.LANHost6, port, within, got, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
