package main

import (
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward/probe/probetest"
	"github.com/portfwd/portfwd/internal/lab"
)

// The check lab tests run `portfwd probe-server` on the WAN host (the
// friend's machine on the internet), game servers written for the tests on
// the LAN host, and `portfwd check` / `apply` on the LAN host.

// probeServer starts portfwd probe-server on the WAN host and returns the
// URL to pass with --via.
func probeServer(t testing.TB, l *lab.Lab) string {
	t.Helper()
	addr := netip.AddrPortFrom(l.WANHost, 8443).String()
	cmd := l.Command(lab.WAN, binary(t), "probe-server", "--listen", addr, "--rate", "100", "--burst", "100")
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the probe server: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitListening(t, l, lab.WAN, addr, cmd)
	return "http://" + addr
}

// waitListening polls addr from h until it accepts, instead of sleeping.
func waitListening(t testing.TB, l *lab.Lab, h lab.Host, addr string, cmd *exec.Cmd) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		err := l.Do(h, func() error {
			c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil {
			return
		}
	}
	t.Fatalf("%v never listened on %s", cmd.Args, addr)
}

const minecraftRule = `rules:
  - name: minecraft
    service: minecraft-java
`

func serveMinecraft(t *testing.T, l *lab.Lab, addr string) net.Listener {
	ln := l.ListenTCP(t, lab.LAN, addr)
	go probetest.ServeMinecraftJava(ln, probetest.JavaStatus{Version: "1.21.4", Protocol: 769, Players: 3, MaxPlayers: 20,
		Description: "Saturday survival"})
	return ln
}

func verdict(t *testing.T, doc checkDoc, rule string) reportView {
	t.Helper()
	for _, r := range doc.Rules {
		if r.Rule == rule {
			return r
		}
	}
	t.Fatalf("no report for rule %s in %+v", rule, doc.Rules)
	return reportView{}
}

func TestLabCheckMinecraft(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	via := probeServer(t, l)
	cfg := writeConfig(t, minecraftRule)
	ln := serveMinecraft(t, l, ":25565")

	// apply checks after reconciling: reachable, with what the server said.
	r := portfwd(t, l, "apply", "--via", via, "-o", "json", cfg)
	doc := decode[applyDoc](t, r.stdout)
	if r.code != exitOK || len(doc.Check) != 1 {
		t.Fatalf("apply: exit %d, check %+v", r.code, doc.Check)
	}
	if c := doc.Check[0]; c.Verdict != "reachable" || c.Info == nil || c.Info.Name != "Saturday survival" || c.Info.Players != 3 || c.Info.MaxPlayers != 20 {
		t.Errorf("check after apply: %+v; want reachable with the MOTD and 3/20 players", c)
	}

	// Stop the server: nothing listening.
	ln.Close()
	r = portfwd(t, l, "check", "--via", via, "-o", "json", cfg)
	if c := verdict(t, decode[checkDoc](t, r.stdout), "minecraft"); r.code != exitUnreachable ||
		c.Verdict != "unreachable" || !strings.Contains(c.Cause, "nothing listening on 192.168.77.10:25565") {
		t.Errorf("server stopped: exit %d, %+v; want unreachable, nothing listening", r.code, c)
	}

	// A server bound to 127.0.0.1 only: the local layer says so.
	serveMinecraft(t, l, "127.0.0.1:25565")
	r = portfwd(t, l, "check", "--via", via, "-o", "json", cfg)
	if c := verdict(t, decode[checkDoc](t, r.stdout), "minecraft"); c.Verdict != "unreachable" || !strings.Contains(c.Cause, "127.0.0.1") {
		t.Errorf("loopback-only server: %+v; want the local layer to name 127.0.0.1", c)
	}

	// The mapping deleted behind portfwd's back.
	serveMinecraft(t, l, l.LANHost.String()+":25565")
	upnpc(t, l, "-d", "25565", "TCP")
	r = portfwd(t, l, "check", "--via", via, "-o", "json", cfg)
	if c := verdict(t, decode[checkDoc](t, r.stdout), "minecraft"); c.Verdict != "unreachable" || !strings.Contains(c.Cause, "mapping missing on the gateway") {
		t.Errorf("mapping deleted: %+v; want mapping missing on the gateway", c)
	}
	// The table tells a person the same, with the fix.
	if r := portfwd(t, l, "check", "--via", via, cfg); !strings.Contains(r.stdout, "fix: run portfwd apply") {
		t.Errorf("the table should carry the fix:\n%s", r.stdout)
	}
}

func TestLabCheckUDPGames(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	via := probeServer(t, l)
	bedrock := l.ListenUDP(t, lab.LAN, ":19132")
	go probetest.ServeBedrock(bedrock, probetest.BedrockStatus{MOTD: "Bedrock world", Version: "1.21.50", Players: 1, MaxPlayers: 10})
	a2s := l.ListenUDP(t, lab.LAN, ":27015")
	go probetest.ServeA2S(a2s, probetest.A2SInfo{Name: "Source server", Map: "de_dust2", Players: 5, MaxPlayers: 16}, true)
	cfg := writeConfig(t, `rules:
  - name: bedrock
    service: minecraft-bedrock
  - name: source
    protocol: udp
    external_port: 27015
    probe: a2s
  - name: silent
    protocol: udp
    external_port: 40000
`)
	l.ListenUDP(t, lab.LAN, ":40000") // bound, never answers
	r := portfwd(t, l, "apply", "--via", via, "-o", "json", cfg)
	doc := decode[applyDoc](t, r.stdout)
	byRule := map[string]reportView{}
	for _, c := range doc.Check {
		byRule[c.Rule] = c
	}
	if c := byRule["bedrock"]; c.Verdict != "reachable" || c.Info == nil || c.Info.Name != "Bedrock world" {
		t.Errorf("bedrock: %+v; want reachable with its MOTD", c)
	}
	if c := byRule["source"]; c.Verdict != "reachable" || c.Info == nil || c.Info.Map != "de_dust2" {
		t.Errorf("a2s with challenge: %+v; want reachable with its map", c)
	}
	if c := byRule["silent"]; c.Verdict == "reachable" {
		t.Errorf("a UDP port that never answers was reported reachable: %+v", c)
	}
}

func TestLabCheckCarrierGradeNAT(t *testing.T) {
	l := lab.ForTest(t, lab.Options{CGNAT: true})
	serveMinecraft(t, l, ":25565")
	r := portfwd(t, l, "check", "-o", "json", writeConfig(t, minecraftRule))
	if c := verdict(t, decode[checkDoc](t, r.stdout), "minecraft"); r.code != exitUnreachable || !strings.Contains(c.Cause, "carrier-grade NAT") {
		t.Errorf("exit %d, %+v; want unreachable with carrier-grade NAT as the cause", r.code, c)
	}
}

func TestLabProbeCommand(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	serveMinecraft(t, l, ":25565")
	target := netip.AddrPortFrom(l.LANHost, 25565).String()
	r := portfwd(t, l, "probe", target, "--kind", "minecraft-java")
	if r.code != exitOK || !strings.Contains(r.stdout, `"Saturday survival"`) || !strings.Contains(r.stdout, "3/20 players") {
		t.Errorf("probe: exit %d\n%s", r.code, r.stdout)
	}
	if r := portfwd(t, l, "probe", netip.AddrPortFrom(l.LANHost, 25566).String(), "--kind", "tcp"); r.code != exitUnreachable {
		t.Errorf("probe of a closed port: exit %d, want %d", r.code, exitUnreachable)
	}
}

// TestLabCheckOneOff: check answers for a catalog service or a port
// without a config file.
func TestLabCheckOneOff(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	via := probeServer(t, l)
	serveMinecraft(t, l, ":25565")
	portfwd(t, l, "apply", "--no-probe", writeConfig(t, minecraftRule))
	r := portfwd(t, l, "check", "minecraft-java", "--via", via, "-o", "json")
	if c := verdict(t, decode[checkDoc](t, r.stdout), "minecraft-java"); r.code != exitOK || c.Verdict != "reachable" {
		t.Errorf("check minecraft-java: exit %d, %+v; want reachable", r.code, c)
	}
	r = portfwd(t, l, "check", "udp/19132", "--via", via, "-o", "json")
	if c := verdict(t, decode[checkDoc](t, r.stdout), "udp-19132"); c.Verdict == "reachable" || !strings.Contains(c.Cause, "19132") {
		t.Errorf("check udp/19132 with nothing there: %+v; want a cause naming the port", c)
	}
}
