package main

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/internal/lab"
)

// TestLabIptablesFirstHour runs, on the lab's router with real iptables,
// what a newcomer meets in the first hour with the router config
// (issue 13): --enable-forwarding says what it changed and how to keep it,
// a rule for a host on none of the router's networks is warned of before
// any change and check names why it is out of reach, and the gateway is
// named in plain words.
func TestLabIptablesFirstHour(t *testing.T) {
	l := lab.ForTest(t, lab.Options{Iptables: true})
	serveAt(t, l, "tcp", net.JoinHostPort(l.LANHost.String(), "25565"), "minecraft on .10")
	router := func(args ...string) cli { t.Helper(); return portfwdIn(t, l, lab.Router, nil, args...) }
	cfg := writeConfig(t, fmt.Sprintf(`gateway:
  backend: iptables
rules:
  - name: minecraft
    service: minecraft-java
    internal_host: %s
  - name: nas
    protocol: tcp
    external_port: 2223
    internal_port: 22
    internal_host: 192.168.1.30
`, l.LANHost))

	if out, err := l.Command(lab.Router, "sysctl", "-w", "net.ipv4.ip_forward=0").CombinedOutput(); err != nil {
		t.Fatalf("sysctl: %v: %s", err, out)
	}
	r := router("apply", "--no-probe", "--enable-forwarding", cfg)
	if r.code != exitOK || !strings.Contains(r.stderr, "turned IPv4 forwarding on") || !strings.Contains(r.stderr, "/etc/sysctl.d/99-portfwd.conf") {
		t.Errorf("apply --enable-forwarding: exit %d; want 0 and a notice of the change and how to keep it", r.code)
	}
	if !strings.Contains(r.stderr, `warning: rule "nas" forwards to 192.168.1.30: 192.168.1.30 is on none of this router's LAN networks (`+lanNet(l)+`)`) ||
		strings.Contains(r.stderr, `rule "minecraft" forwards`) {
		t.Errorf("apply: want a warning for nas (192.168.1.30) alone")
	}
	if r := router("apply", "--no-probe", "--enable-forwarding", cfg); strings.Contains(r.stderr, "turned IPv4 forwarding on") {
		t.Errorf("forwarding already on: apply said it turned it on")
	}
	if r := router("plan", cfg); !strings.Contains(r.stderr, `warning: rule "nas" forwards to 192.168.1.30`) ||
		!strings.Contains(r.stderr, "gateway: iptables://localhost/") || !strings.Contains(r.stderr, "(iptables-nft, ip6tables-nft)") {
		t.Errorf("plan: want the warning, and the gateway named once")
	}
	r = router("check", "-o", "json", cfg)
	doc := decode[checkDoc](t, r.stdout)
	for _, rep := range doc.Rules {
		if rep.Rule == "nas" && (rep.Verdict != "unreachable" || !strings.Contains(rep.Cause, "192.168.1.30:22 does not answer: 192.168.1.30 is on none of this router's LAN networks") ||
			!strings.Contains(rep.Fix, "internal_host") || strings.Contains(rep.Cause, "deadline")) {
			t.Errorf("check nas: %s, cause %q; want unreachable, out of reach with the cause named", rep.Verdict, rep.Cause)
		}
	}
}

// lanNet is the router's LAN network of the lab, as the warning names it.
func lanNet(l *lab.Lab) string {
	a := l.LANHost.As4()
	return fmt.Sprintf("%d.%d.%d.0/24", a[0], a[1], a[2])
}
