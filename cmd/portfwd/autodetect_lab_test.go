package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/internal/lab"
)

// TestLabAutoRemembersTheProtocol: on a router with UPnP off, the second
// run opens only the protocol the first chose; when the router stops
// speaking it, detection asks every protocol again and remembers the new
// choice; a rule for another host does not use the choice made for this
// host's rules. The router counts the packets of each protocol that reach
// it, so "asked" is what the router saw.
func TestLabAutoRemembersTheProtocol(t *testing.T) {
	l := lab.ForTest(t, lab.Options{NoUPnP: true})
	l.Serve(t, lab.LAN, "tcp", 25565, "minecraft on lan")
	count := routerCounters(t, l)
	cfg := writeConfig(t, minecraftRule)
	step := func(name, wantBackend string, remembered bool, want map[string]bool) {
		t.Helper()
		before := count()
		r := portfwd(t, l, "apply", "--no-probe", "-o", "json", cfg)
		doc := decode[applyDoc](t, r.stdout)
		after := count()
		if r.code != exitOK || doc.Gateway.Backend != wantBackend || doc.Gateway.Remembered != remembered {
			t.Fatalf("%s: exit %d, chose %s (remembered %v, answered %v: %s); want %s, remembered %v",
				name, r.code, doc.Gateway.Backend, doc.Gateway.Remembered, doc.Gateway.Answered, doc.Gateway.Why, wantBackend, remembered)
		}
		for proto, asked := range want {
			if got := after[proto] - before[proto]; (got > 0) != asked {
				t.Errorf("%s: the router saw %d %s packets; want some: %v", name, got, proto, asked)
			}
		}
	}
	step("first run", "pcp", false, map[string]bool{"ssdp": true, "pcp": true, "natpmp": true})
	step("second run", "pcp", true, map[string]bool{"ssdp": false, "pcp": true, "natpmp": false})
	// The router restarts, and speaks NAT-PMP alone from now on.
	if err := l.Reboot(t.Context()); err != nil {
		t.Fatal(err)
	}
	nft(t, l, `add rule inet portfwdtest count udp dport 5351 @th,64,8 2 drop`)
	step("PCP gone", "natpmp", false, map[string]bool{"ssdp": true, "pcp": true, "natpmp": true})
	step("after PCP went", "natpmp", true, map[string]bool{"ssdp": false, "pcp": false, "natpmp": true})
	if got, err := fromWAN(l, "tcp", 25565); err != nil || !strings.HasPrefix(got, "minecraft on lan") {
		t.Errorf("from WAN: %q, %v", got, err)
	}

	// NAT-PMP, remembered for this host's rules, cannot map for another.
	before := count()
	other := writeConfig(t, "rules:\n  - name: nas\n    protocol: tcp\n    external_port: 30001\n    internal_host: "+l.LANHost2.String()+"\n")
	r := portfwd(t, l, "apply", "--no-probe", other)
	if r.code == exitOK || !strings.Contains(r.stderr, "forwards to another host") || count()["ssdp"] == before["ssdp"] {
		t.Errorf("a rule for another host: exit %d, %d SSDP packets; want every protocol asked and the rule refused:\n%s", r.code, count()["ssdp"]-before["ssdp"], r.stderr)
	}
}

// routerCounters makes the router count the packets of each protocol
// that reach it, before anything else sees them (prerouting, so multicast
// SSDP counts too), and returns a function that reads the counts: ssdp,
// natpmp (version 0 in the first byte of the payload) and pcp (version 2).
func routerCounters(t *testing.T, l *lab.Lab) func() map[string]int {
	nft(t, l, `add table inet portfwdtest`,
		`add chain inet portfwdtest count { type filter hook prerouting priority -300; }`,
		`add rule inet portfwdtest count udp dport 1900 counter comment "ssdp"`,
		`add rule inet portfwdtest count udp dport 5351 @th,64,8 0 counter comment "natpmp"`,
		`add rule inet portfwdtest count udp dport 5351 @th,64,8 2 counter comment "pcp"`)
	line := regexp.MustCompile(`counter packets (\d+) bytes \d+ comment "(\w+)"`)
	return func() map[string]int {
		out, err := l.Command(lab.Router, "nft", "list", "chain", "inet", "portfwdtest", "count").CombinedOutput()
		if err != nil {
			t.Fatalf("nft list: %v\n%s", err, out)
		}
		counts := map[string]int{}
		for _, m := range line.FindAllStringSubmatch(string(out), -1) {
			counts[m[2]], _ = strconv.Atoi(m[1])
		}
		if len(counts) != 3 {
			t.Fatalf("read %v from the router's counters:\n%s", counts, out)
		}
		return counts
	}
}

// nft runs nft commands on the router, one after the other.
func nft(t *testing.T, l *lab.Lab, cmds ...string) {
	t.Helper()
	if out, err := l.Command(lab.Router, "nft", strings.Join(cmds, "; ")).CombinedOutput(); err != nil {
		t.Fatalf("nft %v: %v\n%s", cmds, err, out)
	}
}
