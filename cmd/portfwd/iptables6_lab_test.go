package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/internal/lab"
)

// TestLabIptablesIPv6: portfwd on the router opens an IPv6 pinhole with
// ip6tables, in both flavours (each on a lab whose router keeps its own
// firewall in that flavour's tables, so it alone decides). A rule for both
// families — on the router, a forward to the LAN host's IPv4 address and a
// pinhole to its IPv6 one — lets the WAN host in over both; re-applying
// writes nothing; removing the IPv6 rule closes the pinhole alone; down
// closes both and leaves ip6tables-save and iptables-save as before.
func TestLabIptablesIPv6(t *testing.T) {
	for _, flavour := range []string{"nft", "legacy"} {
		t.Run(flavour, func(t *testing.T) { iptablesIPv6(t, flavour) })
	}
}

// dualRules is the config: minecraft over IPv4 to the LAN host, and over
// IPv6 (minecraft6) unless v4only.
func dualRules(l *lab.Lab, v4only bool) string {
	cfg := fmt.Sprintf("gateway:\n  backend: iptables\nrules:\n"+
		"  - name: minecraft\n    service: minecraft-java\n    internal_host: %s\n", l.LANHost)
	if !v4only {
		cfg += fmt.Sprintf("  - name: minecraft6\n    service: minecraft-java\n    family: ipv6\n    internal_host: %s\n", l.LANHost6)
	}
	return cfg
}

// v6lab is the lab of one flavour, with its save commands.
type v6lab struct {
	*lab.Lab
	flavour string
}

// save is the router's <cmd>-<flavour>-save, counters and comments
// stripped: cmd is iptables or ip6tables.
func (l v6lab) save(t *testing.T, cmd string) string {
	t.Helper()
	s, err := l.SaveTables(context.Background(), cmd+"-"+l.flavour+"-save")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dial6 connects from the WAN host to the LAN host's IPv6 address.
func (l v6lab) dial6() (string, error) {
	return l.ExchangeFrom(lab.WAN, "tcp", net.JoinHostPort(l.LANHost6.String(), "25565"), "")
}

func iptablesIPv6(t *testing.T, flavour string) {
	l := v6lab{lab.ForTest(t, lab.Options{Iptables: true, IPv6: true, IptablesLegacy: flavour == "legacy"}), flavour}
	pristine4, pristine6 := l.save(t, "iptables"), l.save(t, "ip6tables")
	if !strings.Contains(pristine6, ":FORWARD DROP") {
		t.Fatalf("the router's ip6tables-%s-save has no FORWARD DROP:\n%s", flavour, pristine6)
	}
	serveAt(t, l.Lab, "tcp", net.JoinHostPort(l.LANHost.String(), "25565"), "minecraft over IPv4")
	serveAt(t, l.Lab, "tcp", net.JoinHostPort(l.LANHost6.String(), "25565"), "minecraft over IPv6")
	if got, err := l.dial6(); err == nil {
		t.Fatalf("the WAN host reached the LAN host over IPv6 before any apply: %q", got)
	}
	if _, err := l.ExchangeFrom(lab.LAN, "tcp", net.JoinHostPort(l.LANHost6.String(), "25565"), ""); err != nil {
		t.Fatalf("the LAN host cannot reach its own server over IPv6: %v", err)
	}
	ipt := newIptablesLog(t, flavour)
	router := func(args ...string) cli { t.Helper(); return portfwdIn(t, l.Lab, lab.Router, ipt.env(), args...) }
	cfg := writeConfig(t, dualRules(l.Lab, false))

	t.Run("apply opens both families", func(t *testing.T) { applyDual(t, l, ipt, router, cfg) })
	t.Run("re-apply writes nothing", func(t *testing.T) {
		before := l.save(t, "ip6tables")
		r := router("apply", "--no-probe", "-o", "json", cfg)
		doc := decode[applyDoc](t, r.stdout)
		w4, _ := ipt.writes(t)
		w6, restores := ipt.writes6(t)
		if r.code != exitOK || doc.Summary["noop"] != 2 || len(w4)+len(w6)+restores != 0 || l.save(t, "ip6tables") != before {
			t.Errorf("re-apply: exit %d, summary %v, writes %q %q, %d ip6tables-restores; want 2 noops and no write", r.code, doc.Summary, w4, w6, restores)
		}
	})
	t.Run("removing the IPv6 rule closes the pinhole alone", func(t *testing.T) {
		before := l.save(t, "ip6tables")
		if r := router("apply", "--no-probe", writeConfig(t, dualRules(l.Lab, true))); r.code != exitOK {
			t.Fatalf("apply without minecraft6: exit %d", r.code)
		}
		added, removed := lineDiff(before, l.save(t, "ip6tables"))
		if len(added) != 0 || len(removed) != 1 || !strings.Contains(removed[0], "pf:portfwd:minecraft6") {
			t.Errorf("removing minecraft6: added %q, removed %q; want only its pinhole removed", added, removed)
		}
		if got, err := l.dial6(); err == nil {
			t.Errorf("the pinhole answers after its rule went: %q", got)
		}
		if got, err := fromWAN(l.Lab, "tcp", 25565); err != nil || !strings.HasPrefix(got, "minecraft over IPv4") {
			t.Errorf("the IPv4 forward after the pinhole went: %q, %v", got, err)
		}
	})
	t.Run("down closes both and restores the rulesets", func(t *testing.T) {
		if r := router("apply", "--no-probe", cfg); r.code != exitOK {
			t.Fatalf("apply again: exit %d", r.code)
		}
		if _, err := l.dial6(); err != nil {
			t.Fatalf("the pinhole after applying again: %v", err)
		}
		if r := router("down", cfg); r.code != exitOK {
			t.Fatalf("down: exit %d", r.code)
		}
		for cmd, pristine := range map[string]string{"iptables": pristine4, "ip6tables": pristine6} {
			if after := l.save(t, cmd); after != pristine {
				added, removed := lineDiff(pristine, after)
				t.Errorf("%s-%s-save after down differs from before the first apply: added %q, removed %q", cmd, flavour, added, removed)
			}
		}
		if got, err := l.dial6(); err == nil {
			t.Errorf("the pinhole answers after down: %q", got)
		}
		if got, err := fromWAN(l.Lab, "tcp", 25565); err == nil {
			t.Errorf("the IPv4 forward answers after down: %q", got)
		}
	})
}

// applyDual applies cfg and proves both families from the WAN host: the
// IPv6 changes in one ip6tables-restore, the pinhole in ip6tables-save
// with its tag, status listing it as owned.
func applyDual(t *testing.T, l v6lab, ipt *iptablesLog, router func(...string) cli, cfg string) {
	ipt.writes(t)
	ipt.writes6(t)
	r := router("apply", "--no-probe", "-o", "json", cfg)
	doc := decode[applyDoc](t, r.stdout)
	if r.code != exitOK || doc.Summary["create"] != 2 {
		t.Fatalf("apply: exit %d, summary %v", r.code, doc.Summary)
	}
	// go-iptables names the table first (-t); ip6tables-restore lines do not.
	if w4, _ := ipt.writes(t); slices.ContainsFunc(w4, func(w string) bool { return strings.HasPrefix(w, "-t ") }) {
		t.Errorf("apply wrote to iptables %q; want it all in one iptables-restore", w4)
	}
	w6, restores := ipt.writes6(t)
	if direct := slices.IndexFunc(w6, func(w string) bool { return strings.HasPrefix(w, "-t ") }); direct >= 0 || restores != 1 || len(w6) != 3 {
		t.Errorf("apply wrote to ip6tables %q in %d ip6tables-restores; want the chain, its jump and the pinhole in one", w6, restores)
	}
	pinhole := fmt.Sprintf("-A PORTFWD-FORWARD -d %s/128 -i %s -p tcp -m tcp --dport 25565 -m comment --comment \"pf:portfwd:minecraft6\" -j ACCEPT", l.LANHost6, lab.RouterWANIface)
	if saved := l.save(t, "ip6tables"); !strings.Contains(saved, pinhole+"\n") || !strings.Contains(saved, "-A FORWARD -j PORTFWD-FORWARD\n-A FORWARD -m conntrack") {
		t.Errorf("ip6tables-%s-save lacks the pinhole\n%s\nor the jump before the router's own rules:\n%s", l.flavour, pinhole, saved)
	}
	if got, err := l.dial6(); err != nil || !strings.HasPrefix(got, "minecraft over IPv6 (you are ["+l.WANHost6.String()+"]:") {
		t.Errorf("the LAN host's IPv6 address from the WAN host: %q, %v; want the IPv6 server, seeing the WAN host's own address", got, err)
	}
	if got, err := fromWAN(l.Lab, "tcp", 25565); err != nil || !strings.HasPrefix(got, "minecraft over IPv4 (you are "+l.WANHost.String()) {
		t.Errorf("the router's IPv4 address from the WAN host: %q, %v; want the IPv4 server", got, err)
	}
	st := decode[statusDoc](t, router("status", "-o", "json", cfg).stdout)
	if !slices.Contains(st.Gateway.Protocols, "ip6tables-"+l.flavour) || !slices.ContainsFunc(st.Mappings, func(m statusMapping) bool {
		return m.Ownership == "owned" && m.InternalHost == l.LANHost6.String() && m.Enabled && m.Rule == "minecraft6"
	}) {
		t.Errorf("status: protocols %v, mappings %+v; want ip6tables-%s and the pinhole owned", st.Gateway.Protocols, st.Mappings, l.flavour)
	}
}
