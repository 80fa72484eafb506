package main

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/forward/probe/probetest"
	"github.com/portfwd/portfwd/internal/lab"
)

const minecraftDual = `rules:
  - name: minecraft
    service: minecraft-java
    family: dual
`

// probeServerDual starts portfwd probe-server on the WAN host with its
// default kind of address, ":8443", which takes IPv4 and IPv6 on one
// socket, and returns its URLs over each: the lab has no DNS to give it a
// name with both addresses.
func probeServerDual(t *testing.T, l *lab.Lab) (via4, via6 string) {
	t.Helper()
	cmd := l.Command(lab.WAN, binary(t), "probe-server", "--listen", ":8443", "--rate", "100", "--burst", "100")
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the probe server: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr4, addr6 := netip.AddrPortFrom(l.WANHost, 8443).String(), netip.AddrPortFrom(l.WANHost6, 8443).String()
	waitListening(t, l, lab.WAN, addr4, cmd)
	waitListening(t, l, lab.WAN, addr6, cmd)
	return "http://" + addr4, "http://" + addr6
}

// reportOf is the report of rule in family.
func reportOf(t *testing.T, doc checkDoc, rule, family string) reportView {
	t.Helper()
	for _, r := range doc.Rules {
		if r.Rule == rule && r.Family == family {
			return r
		}
	}
	t.Fatalf("no %s report for rule %s in %+v", family, rule, doc.Rules)
	return reportView{}
}

// layerOf is r's layer named name.
func layerOf(r reportView, name string) stepView {
	for _, s := range r.Layers {
		if s.Layer == name {
			return s
		}
	}
	return stepView{}
}

// TestLabCheckOverIPv6: portfwd check through a probe server on the WAN
// host, over IPv4 and IPv6 at once, for a family: dual Minecraft rule.
// Over IPv6 the router's firewall keeps the WAN host out until the pinhole
// is open; then the probe server, asked from the LAN host's global
// address, reaches the server there and reads its MOTD. A server bound to
// 0.0.0.0 only is named as the cause over IPv6, with the fix, while IPv4
// stays reachable; a probe server named by its IPv4 address alone cannot
// be asked over IPv6, which check says (exit 5).
func TestLabCheckOverIPv6(t *testing.T) {
	l := lab.ForTest(t, lab.Options{IPv6: true})
	via4, via6 := probeServerDual(t, l)
	cfg := writeConfig(t, minecraftDual)
	ln := serveMinecraft(t, l, "[::]:25565")
	check := func(via ...string) (cli, checkDoc) {
		args := []string{"check", "-o", "json", cfg}
		for _, v := range via {
			args = append(args, "--via", v)
		}
		r := portfwd(t, l, args...)
		return r, decode[checkDoc](t, r.stdout)
	}

	// Before the pinhole: nothing gets in over IPv6.
	r, doc := check(via4, via6)
	if c := reportOf(t, doc, "minecraft", "ipv6"); r.code != exitUnreachable || c.Verdict != "unreachable" {
		t.Errorf("before any pinhole: exit %d, %+v; want unreachable over IPv6", r.code, c)
	}

	applied := portfwd(t, l, "apply", "--no-probe", cfg)
	if applied.code != exitOK {
		t.Errorf("apply: exit %d, want %d (the forward and the pinhole made)", applied.code, exitOK)
	}

	r, doc = check(via4, via6)
	v4, v6 := reportOf(t, doc, "minecraft", "ipv4"), reportOf(t, doc, "minecraft", "ipv6")
	if r.code != exitOK || v4.Verdict != "reachable" || v6.Verdict != "reachable" || v6.Info == nil || v6.Info.Name != "Saturday survival" ||
		v6.Mapping != "tcp6/25565" || v6.Address != netip.AddrPortFrom(l.LANHost6, 25565).String() {
		t.Errorf("with the pinhole: exit %d\nIPv4 %+v\nIPv6 %+v\nwant both reachable, the MOTD over IPv6 at [%s]:25565", r.code, v4, v6, l.LANHost6)
	}
	if o := layerOf(v6, "outside"); !strings.Contains(o.Message, "answered from outside over IPv6 (["+l.LANHost6.String()+"]:25565)") {
		t.Errorf("outside over IPv6: %+v", o)
	}
	gw := layerOf(v6, "gateway")
	if gw.Status != "ok" || !strings.Contains(gw.Message, "pinhole tcp6/25565 -> ") {
		t.Errorf("gateway over IPv6: %+v; want the pinhole apply opened", gw)
	}

	// A probe server named by its IPv4 address only: the check over IPv6
	// could not run, and says why.
	r, doc = check(via4)
	if c := reportOf(t, doc, "minecraft", "ipv6"); r.code != exitNotChecked || c.Verdict == "reachable" ||
		!strings.Contains(r.stderr, "the check over IPv6 could not run") || !strings.Contains(r.stderr, "its URL names it by its IPv4 address "+l.WANHost.String()) {
		t.Errorf("IPv4 URL only: exit %d, %+v\n%s", r.code, c, r.stderr)
	}

	// The server on 0.0.0.0 only: IPv4 still reachable, IPv6 names it.
	ln.Close()
	serveMinecraftIPv4Only(t, l)
	r, doc = check(via4, via6)
	v4, v6 = reportOf(t, doc, "minecraft", "ipv4"), reportOf(t, doc, "minecraft", "ipv6")
	if r.code != exitUnreachable || v4.Verdict != "reachable" || v6.Verdict != "unreachable" ||
		!strings.Contains(v6.Cause, "bound to 0.0.0.0 only") || !strings.Contains(v6.Cause, "an IPv4 socket takes no IPv6") ||
		!strings.Contains(v6.Fix, "server-ip=") || !strings.Contains(v6.Fix, "preferIPv4Stack") {
		t.Errorf("IPv4-only server: exit %d\nIPv4 %+v\nIPv6 %+v\nwant IPv6 unreachable naming 0.0.0.0, with the fix", r.code, v4, v6)
	}
}

// serveMinecraftIPv4Only serves the test Minecraft server on an IPv4
// socket on 0.0.0.0, as a server started with
// -Djava.net.preferIPv4Stack=true does. (Go's "tcp" on 0.0.0.0 would open
// a dual-stack socket.)
func serveMinecraftIPv4Only(t *testing.T, l *lab.Lab) {
	t.Helper()
	var ln net.Listener
	if err := l.Do(lab.LAN, func() (err error) { ln, err = net.Listen("tcp4", "0.0.0.0:25565"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go probetest.ServeMinecraftJava(ln, probetest.JavaStatus{Version: "1.21.4", Protocol: 769, Players: 3, MaxPlayers: 20,
		Description: "Saturday survival"})
}

// TestLabCheckCarrierGradeNATOffersIPv6: behind carrier-grade NAT (the
// router's WAN address in 100.64.0.0/10), on a LAN with IPv6, check's fix
// for an IPv4 rule is IPv6: family: dual, and the address friends then
// connect to.
func TestLabCheckCarrierGradeNATOffersIPv6(t *testing.T) {
	l := lab.ForTest(t, lab.Options{CGNAT: true, IPv6: true})
	serveMinecraft(t, l, ":25565")
	r := portfwd(t, l, "check", "-o", "json", writeConfig(t, minecraftRule))
	friends := netip.AddrPortFrom(l.LANHost6, 25565).String()
	if c := verdict(t, decode[checkDoc](t, r.stdout), "minecraft"); r.code != exitUnreachable || !strings.Contains(c.Cause, "carrier-grade NAT") ||
		!strings.Contains(c.Fix, "set family: dual (or ipv6) on rule minecraft") || !strings.Contains(c.Fix, "friends then connect to "+friends+" over IPv6") {
		t.Errorf("exit %d, %+v; want carrier-grade NAT as the cause and family: dual with %s as the fix", r.code, c, friends)
	}
}
