package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/internal/lab"
)

// The iptables lab tests run portfwd on the router itself (the lab's
// iptables variant: no miniupnpd, the router's own firewall rules) and
// prove each forward from the WAN namespace, with real iptables.

// iptablesRules is a config for the router: TCP, UDP and a UDP range, to
// two LAN hosts. minecraft is more keys for the minecraft rule.
func iptablesRules(l *lab.Lab, minecraft string) string {
	return fmt.Sprintf(`gateway:
  backend: iptables
rules:
  - name: minecraft
    service: minecraft-java
    internal_host: %[1]s
%[3]s  - name: bedrock
    service: minecraft-bedrock
    internal_host: %[1]s
  - name: valheim
    protocol: udp
    external_port: 2456-2458
    internal_host: %[2]s
`, l.LANHost, l.LANHost2, minecraft)
}

// iptablesWeb is a rule for the second LAN host, removed in one phase.
func iptablesWeb(l *lab.Lab) string {
	return fmt.Sprintf("  - name: web\n    protocol: tcp\n    external_port: 8080\n    internal_host: %s\n", l.LANHost2)
}

// iptablesLog wraps the router's iptables, ip6tables and their -restores
// in scripts that log every call, and every line restored, so a test can
// count portfwd's writes to the real iptables: IPv4's in calls.log, IPv6's
// in calls6.log. (portfwd runs the -restore beside an iptables that is no
// xtables multi-binary, as this wrapper is.)
type iptablesLog struct {
	dir string
}

// newIptablesLog wraps the tools of the flavour: "" for the ones in PATH,
// "nft" or "legacy" for iptables-nft, iptables-legacy and their kin.
func newIptablesLog(t *testing.T, flavour string) *iptablesLog {
	t.Helper()
	il := &iptablesLog{dir: t.TempDir()}
	for _, tool := range []string{"iptables", "iptables-restore", "ip6tables", "ip6tables-restore"} {
		real, err := exec.LookPath(flavourTool(tool, flavour))
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		log := filepath.Join(il.dir, "calls.log")
		if strings.HasPrefix(tool, "ip6") {
			log = filepath.Join(il.dir, "calls6.log")
		}
		script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$*\" >> %[1]s\nexec %[2]s \"$@\"\n", log, real)
		if strings.HasSuffix(tool, "-restore") {
			script = fmt.Sprintf("#!/bin/sh\nprintf 'restore %%s\\n' \"$*\" >> %[1]s\ntee -a %[1]s | %[2]s \"$@\"\n", log, real)
		}
		if err := os.WriteFile(filepath.Join(il.dir, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return il
}

// flavourTool is tool of the flavour: iptables-restore of legacy is
// iptables-legacy-restore.
func flavourTool(tool, flavour string) string {
	if flavour == "" {
		return tool
	}
	cmd, rest, restore := strings.Cut(tool, "-")
	if restore {
		return cmd + "-" + flavour + "-" + rest
	}
	return cmd + "-" + flavour
}

// env puts the wrapper first on PATH.
func (il *iptablesLog) env() []string { return []string{"PATH=" + il.dir + ":" + os.Getenv("PATH")} }

// writes are the logged iptables calls and restored lines that change the
// ruleset, and resets the log.
func (il *iptablesLog) writes(t *testing.T) (writes []string, calls int) {
	t.Helper()
	writes, calls, _ = il.writesIn(t, "calls.log")
	return writes, calls
}

// writes6 is writes of ip6tables, and how many ip6tables-restores ran.
func (il *iptablesLog) writes6(t *testing.T) (writes []string, restores int) {
	t.Helper()
	writes, _, restores = il.writesIn(t, "calls6.log")
	return writes, restores
}

func (il *iptablesLog) writesIn(t *testing.T, name string) (writes []string, calls, restores int) {
	t.Helper()
	file := filepath.Join(il.dir, name)
	b, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	_ = os.Remove(file)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		calls++
		if strings.HasPrefix(line, "restore ") {
			restores++
		}
		if slices.ContainsFunc(strings.Fields(line), func(w string) bool {
			return slices.Contains([]string{"-A", "-I", "-D", "-R", "-N", "-X", "-F", "-E", "-P", "-Z"}, w)
		}) {
			writes = append(writes, line)
		}
	}
	return writes, calls, restores
}

func iptablesSave(t *testing.T, l *lab.Lab) string {
	t.Helper()
	s, err := l.IptablesSave(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// lineDiff is what b has that a has not, and what a has that b has not.
func lineDiff(a, b string) (added, removed []string) {
	as, bs := strings.Split(a, "\n"), strings.Split(b, "\n")
	for _, l := range bs {
		if !slices.Contains(as, l) {
			added = append(added, l)
		}
	}
	for _, l := range as {
		if !slices.Contains(bs, l) {
			removed = append(removed, l)
		}
	}
	return added, removed
}

// serveAt runs a greeting TCP server or an echoing UDP one on addr in the
// LAN namespace, so a reply names the host that answered.
func serveAt(t *testing.T, l *lab.Lab, network, addr, greeting string) {
	t.Helper()
	if network == "udp" {
		go lab.ServeUDP(l.ListenUDP(t, lab.LAN, addr), greeting, nil)
		return
	}
	go lab.ServeTCP(l.ListenTCP(t, lab.LAN, addr), greeting, nil)
}

func TestLabIptables(t *testing.T) {
	l := lab.ForTest(t, lab.Options{Iptables: true})
	pristine := iptablesSave(t, l)
	h1, h2 := l.LANHost.String(), l.LANHost2.String()
	serveAt(t, l, "tcp", net.JoinHostPort(h1, "25565"), "minecraft on .10")
	serveAt(t, l, "udp", net.JoinHostPort(h1, "19132"), "bedrock on .10")
	serveAt(t, l, "udp", net.JoinHostPort(h2, "2457"), "valheim on .11")
	serveAt(t, l, "tcp", net.JoinHostPort(h2, "8080"), "web on .11")
	ipt := newIptablesLog(t, "")
	router := func(args ...string) cli { t.Helper(); return portfwdIn(t, l, lab.Router, ipt.env(), args...) }
	cfg := writeConfig(t, iptablesRules(l, "")+iptablesWeb(l))

	t.Run("forwarding off", func(t *testing.T) {
		if out, err := l.Command(lab.Router, "sysctl", "-w", "net.ipv4.ip_forward=0").CombinedOutput(); err != nil {
			t.Fatalf("sysctl: %v: %s", err, out)
		}
		if r := router("apply", "--no-probe", cfg); r.code != exitError || !strings.Contains(r.stderr, "--enable-forwarding") {
			t.Errorf("apply with forwarding off: exit %d; want %d and the fix", r.code, exitError)
		}
		if w, _ := ipt.writes(t); len(w) != 0 {
			t.Errorf("a refused apply wrote to iptables: %q", w)
		}
		for _, cmd := range []string{"status", "plan", "down"} {
			if r := router(cmd, cfg); r.code != exitOK || !strings.Contains(r.stderr, "warning: IPv4 forwarding is off") {
				t.Errorf("%s with forwarding off: exit %d; want 0 and a warning", cmd, r.code)
			}
		}
	})

	t.Run("apply reaches both hosts from the WAN", func(t *testing.T) {
		ipt.writes(t)
		r := router("apply", "--no-probe", "--enable-forwarding", "-o", "json", cfg)
		doc := decode[applyDoc](t, r.stdout)
		if r.code != exitOK || doc.Summary["create"] != 6 {
			t.Fatalf("apply: exit %d, summary %v", r.code, doc.Summary)
		}
		// go-iptables names the table first (-t); iptables-restore lines do not.
		writes, _ := ipt.writes(t)
		if direct := slices.IndexFunc(writes, func(w string) bool { return strings.HasPrefix(w, "-t ") }); direct >= 0 || len(writes) < 12 {
			t.Errorf("apply wrote %q; want every rule through one iptables-restore", writes)
		}
		if got, _ := l.Command(lab.Router, "sysctl", "-n", "net.ipv4.ip_forward").Output(); strings.TrimSpace(string(got)) != "1" {
			t.Errorf("--enable-forwarding left net.ipv4.ip_forward=%s", got)
		}
		for _, p := range []struct {
			network string
			port    int
			want    string
		}{
			{"tcp", 25565, "minecraft on .10 (you are " + l.WANHost.String() + ":"},
			{"udp", 19132, "bedrock on .10: ping"},
			{"udp", 2457, "valheim on .11: ping"},
			{"tcp", 8080, "web on .11 (you are " + l.WANHost.String() + ":"},
		} {
			if got, err := fromWAN(l, p.network, p.port); err != nil || !strings.HasPrefix(got, p.want) {
				t.Errorf("%s/%d from the WAN: %q, %v; want %q", p.network, p.port, got, err, p.want)
			}
		}
		if got, err := l.ExchangeFrom(lab.LAN, "tcp", l.RouterWAN.String()+":25565", "ping"); err == nil {
			t.Errorf("hairpin is off, yet the LAN host reached its forward through the WAN address: %q", got)
		}
	})

	t.Run("re-apply writes nothing", func(t *testing.T) {
		ipt.writes(t)
		r := router("apply", "--no-probe", "-o", "json", cfg)
		doc := decode[applyDoc](t, r.stdout)
		writes, calls := ipt.writes(t)
		if r.code != exitOK || doc.Summary["noop"] != 6 || len(writes) != 0 {
			t.Errorf("re-apply: exit %d, summary %v, iptables writes %q; want 6 noops, no write", r.code, doc.Summary, writes)
		}
		t.Logf("re-apply ran iptables %d times, none of them a write", calls)
	})

	t.Run("status", func(t *testing.T) {
		r := router("status", "-o", "json", cfg)
		doc := decode[statusDoc](t, r.stdout)
		owned, foreign := 0, 0
		for _, m := range doc.Mappings {
			switch {
			case m.Ownership == "owned":
				owned++
			case m.Ownership == "foreign" && m.ExternalPort == lab.HandForwardPort && m.Description == "the owner's own forward":
				foreign++
			}
		}
		if r.code != exitOK || owned != 6 || foreign != 1 || doc.ExternalAddress != l.RouterWAN.String() ||
			!slices.Contains(doc.Gateway.Protocols, "iptables-nft") {
			t.Errorf("status: exit %d, %d owned, %d foreign, external %s, protocols %v", r.code, owned, foreign, doc.ExternalAddress, doc.Gateway.Protocols)
		}
	})

	t.Run("removing a rule removes exactly its rules", func(t *testing.T) {
		before := iptablesSave(t, l)
		if r := router("apply", "--no-probe", writeConfig(t, iptablesRules(l, ""))); r.code != exitOK {
			t.Fatalf("apply without web: exit %d", r.code)
		}
		added, removed := lineDiff(before, iptablesSave(t, l))
		if len(added) != 0 || len(removed) != 2 || !strings.Contains(removed[0], "portfwd:web") || !strings.Contains(removed[1], "portfwd:web") {
			t.Errorf("removing web: added %q, removed %q; want only web's DNAT and ACCEPT removed", added, removed)
		}
		if got, err := fromWAN(l, "tcp", 8080); err == nil {
			t.Errorf("tcp/8080 still answers after its rule went: %q", got)
		}
	})

	t.Run("hairpin", func(t *testing.T) {
		hairpin := writeConfig(t, iptablesRules(l, "    hairpin: true\n"))
		if r := router("apply", "--no-probe", hairpin); r.code != exitOK {
			t.Fatalf("apply with hairpin: exit %d", r.code)
		}
		got, err := l.ExchangeFrom(lab.LAN, "tcp", l.RouterWAN.String()+":25565", "ping")
		if want := "minecraft on .10 (you are " + l.RouterLAN.String() + ":"; err != nil || !strings.HasPrefix(got, want) {
			t.Errorf("the LAN host through the WAN address: %q, %v; want %q", got, err, want)
		}
		if got, err := fromWAN(l, "tcp", 25565); err != nil || !strings.Contains(got, "(you are "+l.WANHost.String()) {
			t.Errorf("from the WAN with hairpin on: %q, %v; want the WAN host's own address kept", got, err)
		}
		if r := router("plan", "--detailed-exitcode", hairpin); r.code != exitOK {
			t.Errorf("plan after the hairpin apply: exit %d, want 0", r.code)
		}
		doc := decode[statusDoc](t, router("status", "-o", "json", hairpin).stdout)
		for _, m := range doc.Mappings {
			if m.Ownership == "owned" && m.Hairpin != (m.Rule == "minecraft") {
				t.Errorf("status: %s/%d hairpin %v; want it on minecraft's forward only", m.Protocol, m.ExternalPort, m.Hairpin)
			}
		}
	})

	t.Run("a foreign forward is a conflict and stays", func(t *testing.T) {
		ssh := fmt.Sprintf("  - name: ssh\n    protocol: tcp\n    external_port: %d\n    internal_port: 22\n    internal_host: %s\n", lab.HandForwardPort, l.LANHost)
		r := router("apply", "--no-probe", writeConfig(t, iptablesRules(l, "")+ssh))
		if r.code != exitPartial || !strings.Contains(r.stdout, "the owner's own forward") {
			t.Errorf("apply over the owner's forward: exit %d; want %d naming the holder", r.code, exitPartial)
		}
		if !strings.Contains(iptablesSave(t, l), "--dport 2222 -m comment --comment \"the owner\\'s own forward\" -j DNAT --to-destination "+l.LANHost2.String()+":22") {
			t.Errorf("the owner's forward changed:\n%s", iptablesSave(t, l))
		}
	})

	t.Run("down restores the ruleset", func(t *testing.T) {
		r := router("down", cfg)
		if r.code != exitOK {
			t.Fatalf("down: exit %d", r.code)
		}
		if after := iptablesSave(t, l); after != pristine {
			added, removed := lineDiff(pristine, after)
			t.Errorf("iptables-save after down differs from before the first apply: added %q, removed %q", added, removed)
		}
		if got, err := fromWAN(l, "tcp", 25565); err == nil {
			t.Errorf("tcp/25565 answers after down: %q", got)
		}
	})
}

// TestLabIptablesDaemon: the daemon on the router puts the forwards back
// within seconds when something removes them: a firewall reload that
// restores the ruleset without portfwd's chains, and a lost jump.
func TestLabIptablesDaemon(t *testing.T) {
	l := lab.ForTest(t, lab.Options{Iptables: true})
	pristine, err := l.Command(lab.Router, "iptables-save").Output()
	if err != nil {
		t.Fatal(err)
	}
	serveAt(t, l, "tcp", net.JoinHostPort(l.LANHost.String(), "25565"), "minecraft on .10")
	d := startDaemonIn(t, l, lab.Router, "--check", "500ms", writeConfig(t, iptablesRules(l, "")))
	waitReachable(t, l, 25565, 10*time.Second)

	reload := l.Command(lab.Router, "iptables-restore")
	reload.Stdin = strings.NewReader(string(pristine))
	if out, err := reload.CombinedOutput(); err != nil {
		t.Fatalf("iptables-restore: %v: %s", err, out)
	}
	start := time.Now()
	d.waitLog(t, "no longer holds tcp/25565", 1, 10*time.Second)
	waitReachable(t, l, 25565, 10*time.Second)
	t.Logf("restored %v after a firewall reload", time.Since(start).Round(time.Millisecond))

	if out, err := l.Command(lab.Router, "iptables", "-D", "FORWARD", "-j", "PORTFWD-FORWARD").CombinedOutput(); err != nil {
		t.Fatalf("removing the jump: %v: %s", err, out)
	}
	start = time.Now()
	d.waitLog(t, "no longer holds tcp/25565", 2, 10*time.Second)
	waitReachable(t, l, 25565, 10*time.Second)
	t.Logf("restored %v after the FORWARD jump went", time.Since(start).Round(time.Millisecond))
	if code := d.stop(t); code != exitOK {
		t.Errorf("daemon stopped with exit %d", code)
	}
}
