package lab

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"text/template"
)

// iptablesTmpl is the router's own firewall in the iptables variant, as a
// small Linux router keeps it: forward what the LAN starts and what is
// related, drop the rest, masquerade out of the WAN. It also holds rules of
// the kind other software keeps in the same tables (a chain of the
// owner's, a Docker-style jump, a hand-made port forward), which portfwd
// must leave exactly as they are.
var iptablesTmpl = template.Must(template.New("iptables").Parse(`*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:OWNER-INPUT - [0:0]
-A INPUT -j OWNER-INPUT
-A OWNER-INPUT -i {{.LAN}} -p tcp -m tcp --dport 22 -m comment --comment "ssh from the LAN" -j ACCEPT
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i {{.LAN}} -o {{.WAN}} -j ACCEPT
-A FORWARD -d {{.LANHost2}}/32 -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A PREROUTING -i {{.WAN}} -p tcp -m tcp --dport {{.HandPort}} -m comment --comment "the owner's own forward" -j DNAT --to-destination {{.LANHost2}}:22
-A DOCKER -i docker0 -j RETURN
-A POSTROUTING -o {{.WAN}} -j MASQUERADE
COMMIT
`))

// ip6tablesTmpl is the router's IPv6 firewall in the iptables variant
// with Options.IPv6, as a small Linux router keeps it: no NAT, the LAN's
// connections out and their answers forwarded, ICMPv6 too (RFC 4890: path
// MTU discovery needs it), and nothing else, so a WAN host reaches a LAN
// host's global address only through a pinhole.
var ip6tablesTmpl = template.Must(template.New("ip6tables").Parse(`*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -p ipv6-icmp -j ACCEPT
-A FORWARD -i {{.LAN}} -o {{.WAN}} -j ACCEPT
COMMIT
`))

// HandForwardPort is the external TCP port of the port forward the
// iptables variant's owner wrote by hand: portfwd lists it as foreign and
// refuses to take it over.
const HandForwardPort = 2222

// configureIptablesRouter gives the router the default route a real one
// has (portfwd finds the WAN interface by it) and its own firewall.
func (l *Lab) configureIptablesRouter(ctx context.Context) error {
	if err := l.ip(ctx, "-n", l.Namespace(Router), "route", "add", "default", "via", l.WANHost.String()); err != nil {
		return err
	}
	return l.loadIptables(ctx)
}

// loadIptables loads iptablesTmpl, and with Options.IPv6 ip6tablesTmpl,
// in the router namespace with iptables-restore and ip6tables-restore, or
// their legacy flavour's (Options.IptablesLegacy). Only the flavour loaded
// holds a DROP, so a backend of that flavour alone decides what passes.
func (l *Lab) loadIptables(ctx context.Context) error {
	type ruleset struct {
		tmpl *template.Template
		cmd  string
	}
	rulesets := []ruleset{{iptablesTmpl, "iptables-restore"}}
	if l.opts.IPv6 {
		rulesets = append(rulesets, ruleset{ip6tablesTmpl, "ip6tables-restore"})
	}
	data := map[string]any{"WAN": RouterWANIface, "LAN": RouterLANIface, "LANHost2": l.LANHost2, "HandPort": HandForwardPort}
	for _, r := range rulesets {
		tmpl, cmd := r.tmpl, r.cmd
		if l.opts.IptablesLegacy {
			cmd = strings.Replace(cmd, "tables-", "tables-legacy-", 1)
		}
		var b strings.Builder
		if err := tmpl.Execute(&b, data); err != nil {
			return fmt.Errorf("rendering the router's %s ruleset: %w", tmpl.Name(), err)
		}
		c := l.CommandContext(ctx, Router, tool(cmd))
		c.Stdin = strings.NewReader(b.String())
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("loading the router's %s ruleset with %s: %w: %s", tmpl.Name(), cmd, err, out)
		}
	}
	return nil
}

// savedNoise is what changes in iptables-save output without a rule
// changing: the header and footer comments with their time, and the
// packet and byte counters.
var savedNoise = regexp.MustCompile(`(?m)^#.*\n|\[\d+:\d+\]`)

// IptablesSave is the router's `iptables-save`, counters and comments
// stripped, for comparing the whole ruleset before and after.
func (l *Lab) IptablesSave(ctx context.Context) (string, error) {
	return l.SaveTables(ctx, "iptables-save")
}

// SaveTables is IptablesSave with another save command, such as
// iptables-legacy-save for the tables of the other flavour.
func (l *Lab) SaveTables(ctx context.Context, save string) (string, error) {
	out, err := l.CommandContext(ctx, Router, tool(save)).Output()
	if err != nil {
		return "", fmt.Errorf("%s in the router: %w", save, err)
	}
	return savedNoise.ReplaceAllString(string(out), ""), nil
}
