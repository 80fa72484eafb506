package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/internal/lab"
)

// The lab tests run the real binary in the LAN namespace against a real
// miniupnpd, and prove each forward from the WAN namespace. See LAB.md.

const acceptance = `rules:
  - name: minecraft
    service: minecraft-java
    description: friends' server
  - name: bedrock
    service: minecraft-bedrock
  - name: valheim
    protocol: udp
    external_port: 2456-2458
`

// igdModes are the two ways miniupnpd presents itself: IGD:2 only (the
// Debian build's default) and IGD:1 (force_igd_desc_v1=yes).
var igdModes = []struct {
	name string
	opts lab.Options
}{{"IGDv2", lab.Options{}}, {"IGDv1", lab.Options{IGDv1: true}}}

// acceptanceMappings is how many mappings the acceptance config makes:
// tcp/25565, udp/19132 and udp/2456-2458.
const acceptanceMappings = 5

func TestLabApplyReachesLANHost(t *testing.T) {
	for _, mode := range igdModes {
		t.Run(mode.name, func(t *testing.T) {
			l := lab.ForTest(t, mode.opts)
			cfg := writeConfig(t, acceptance)
			l.Serve(t, lab.LAN, "tcp", 25565, "minecraft on lan")
			l.Serve(t, lab.LAN, "udp", 19132, "bedrock on lan")
			l.Serve(t, lab.LAN, "udp", 2457, "valheim on lan")

			if r := portfwd(t, l, "plan", "--detailed-exitcode", cfg); r.code != exitPending {
				t.Fatalf("plan before apply: exit %d, want %d", r.code, exitPending)
			}
			r := portfwd(t, l, "apply", "--no-probe", "-o", "json", cfg)
			doc := decode[applyDoc](t, r.stdout)
			if r.code != exitOK || doc.Summary["create"] != acceptanceMappings || doc.FormatVersion != formatVersion {
				t.Fatalf("apply: exit %d, summary %v", r.code, doc.Summary)
			}
			for _, probe := range []struct {
				network string
				port    int
				want    string
			}{{"tcp", 25565, "minecraft on lan (you are " + l.WANHost.String()}, {"udp", 19132, "bedrock on lan: ping"}, {"udp", 2457, "valheim on lan: ping"}} {
				got, err := fromWAN(l, probe.network, probe.port)
				if err != nil || !strings.HasPrefix(got, probe.want) {
					t.Errorf("%s/%d from WAN: %q, %v; want %q", probe.network, probe.port, got, err, probe.want)
				}
			}
			if n := l.AddPortMappingCount(); n != acceptanceMappings {
				t.Errorf("miniupnpd served %d AddPortMapping, want %d", n, acceptanceMappings)
			}

			// Applying the same file again sends no AddPortMapping at all,
			// and no discovery either: the gateway is remembered.
			searches := strings.Count(l.MiniupnpdLog(), "SSDP M-SEARCH")
			r = portfwd(t, l, "apply", "--no-probe", "-o", "json", cfg)
			if n := strings.Count(l.MiniupnpdLog(), "SSDP M-SEARCH"); n != searches {
				t.Errorf("second apply sent %d M-SEARCH, want 0 (cached gateway)", n-searches)
			}
			doc = decode[applyDoc](t, r.stdout)
			if r.code != exitOK || doc.Summary["noop"] != acceptanceMappings {
				t.Errorf("second apply: exit %d, summary %v", r.code, doc.Summary)
			}
			if n := l.AddPortMappingCount(); n != acceptanceMappings {
				t.Errorf("second apply: miniupnpd served %d AddPortMapping in all, want still %d", n, acceptanceMappings)
			}
			if r := portfwd(t, l, "plan", "--detailed-exitcode", "--rediscover", cfg); r.code != exitOK {
				t.Errorf("plan after apply: exit %d, want 0", r.code)
			}
			if n := strings.Count(l.MiniupnpdLog(), "SSDP M-SEARCH"); n == searches {
				t.Errorf("plan --rediscover sent no M-SEARCH")
			}
		})
	}
}

func TestLabForeignMappingsSurvive(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	host := l.LANHost.String()
	// Another program holds the Minecraft port (forwarding it to another
	// internal port: one forwarding it where the rule wants is in place,
	// TestLabHeldByAGame) and one more.
	upnpc(t, l, "-e", "someone else", "-a", host, "25566", "25565", "TCP")
	upnpc(t, l, "-e", "console", "-a", host, "3074", "3074", "UDP")
	cfg := writeConfig(t, acceptance)

	r := portfwd(t, l, "apply", "--no-probe", "-o", "json", cfg)
	doc := decode[applyDoc](t, r.stdout)
	if r.code != exitPartial {
		t.Errorf("apply over a foreign mapping: exit %d, want %d", r.code, exitPartial)
	}
	var conflict *changeView
	for i, c := range doc.Changes {
		if c.Mapping == "tcp/25565" {
			conflict = &doc.Changes[i]
		}
	}
	if conflict == nil || conflict.Action != "conflict" || !strings.Contains(conflict.Error, "someone else") {
		t.Errorf("tcp/25565 outcome = %+v; want a conflict naming the holder", conflict)
	}
	if doc.Summary["create"] != acceptanceMappings-1 || doc.Failed != 1 {
		t.Errorf("the other rules should apply: summary %v, failed %d", doc.Summary, doc.Failed)
	}
	if !strings.Contains(r.stderr, "1 of") {
		t.Errorf("stderr should say how many changes failed:\n%s", r.stderr)
	}

	// Prune with an empty rule list, then down: both leave foreign mappings.
	if r := portfwd(t, l, "apply", "--no-probe", writeConfig(t, "rules: []\n")); r.code != exitOK {
		t.Errorf("apply of an empty config: exit %d", r.code)
	}
	portfwd(t, l, "apply", "--no-probe", cfg)
	if r := portfwd(t, l, "down", cfg); r.code != exitOK {
		t.Errorf("down: exit %d", r.code)
	}
	st := decode[statusDoc](t, portfwd(t, l, "status", "-o", "json").stdout)
	if len(st.Mappings) != 2 {
		t.Fatalf("after down the gateway holds %d mappings, want the 2 foreign ones: %+v", len(st.Mappings), st.Mappings)
	}
	for _, m := range st.Mappings {
		if m.Ownership != "foreign" || (m.Description != "someone else" && m.Description != "console") {
			t.Errorf("mapping changed or not marked foreign: %+v", m)
		}
	}
}

func TestLabRemovedRuleIsDeleted(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	upnpc(t, l, "-e", "someone else", "-a", l.LANHost.String(), "8080", "8080", "TCP")
	if r := portfwd(t, l, "apply", "--no-probe", writeConfig(t, acceptance)); r.code != exitOK {
		t.Fatalf("apply: exit %d", r.code)
	}
	withoutValheim := acceptance[:strings.Index(acceptance, "  - name: valheim")]
	r := portfwd(t, l, "apply", "--no-probe", "-o", "json", writeConfig(t, withoutValheim))
	doc := decode[applyDoc](t, r.stdout)
	var deleted []string
	for _, c := range doc.Changes {
		if c.Action == "delete" {
			deleted = append(deleted, c.Mapping)
		}
	}
	if r.code != exitOK || strings.Join(deleted, " ") != "udp/2456 udp/2457 udp/2458" || doc.Summary["noop"] != 2 {
		t.Errorf("exit %d, deleted %v, summary %v; want exactly valheim's three deleted", r.code, deleted, doc.Summary)
	}
	if n := l.SOAPActionCount("DeletePortMapping"); n != 3 {
		t.Errorf("miniupnpd served %d DeletePortMapping, want 3", n)
	}
	st := decode[statusDoc](t, portfwd(t, l, "status", "-o", "json").stdout)
	if len(st.Mappings) != 3 {
		t.Errorf("gateway holds %d mappings, want minecraft, bedrock and the foreign one: %+v", len(st.Mappings), st.Mappings)
	}
}

// TestLabInvalidConfigs runs every invalid example through apply: each
// exits 1 naming file, line and key, and the gateway hears nothing.
func TestLabInvalidConfigs(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	files, _ := filepath.Glob("../../forward/testdata/invalid/*.yaml")
	if len(files) < 10 {
		t.Fatalf("found %d invalid configs, want at least 10", len(files))
	}
	before := l.MiniupnpdLog()
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(data), "\n")
			want, ok := strings.CutPrefix(first, "# want: ")
			if !ok {
				t.Fatalf("%s: first line must be '# want: LINE: KEY: MESSAGE'", f)
			}
			abs, _ := filepath.Abs(f)
			r := portfwd(t, l, "apply", "--no-probe", abs)
			if r.code != exitError || !strings.Contains(r.stderr, abs+":"+want) {
				t.Errorf("exit %d; stderr should contain %q:\n%s", r.code, abs+":"+want, r.stderr)
			}
		})
	}
	if after := l.MiniupnpdLog(); after != before {
		t.Errorf("invalid configs reached the gateway; miniupnpd logged:\n%s", strings.TrimPrefix(after, before))
	}
}

func TestLabSecureModeRefusal(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	cfg := writeConfig(t, "rules:\n  - name: nas\n    protocol: tcp\n    external_port: 8443\n    internal_host: "+
		l.LANHost2.String()+"\n  - name: web\n    protocol: tcp\n    external_port: 8080\n")
	r := portfwd(t, l, "apply", "--no-probe", "--backend", "upnp", cfg)
	if r.code != exitPartial || !strings.Contains(r.stdout+r.stderr, "secure mode") {
		t.Errorf("exit %d; want %d and an explanation of UPnP secure mode", r.code, exitPartial)
	}
	if !strings.Contains(r.stdout, "created") {
		t.Errorf("the rule for this host should still apply")
	}
}

func TestLabCarrierGradeNAT(t *testing.T) {
	l := lab.ForTest(t, lab.Options{CGNAT: true})
	r := portfwd(t, l, "apply", "--no-probe", writeConfig(t, acceptance))
	if r.code != exitPartial || !strings.Contains(r.stdout+r.stderr, "carrier-grade NAT") {
		t.Errorf("exit %d; want %d and a carrier-grade NAT diagnosis", r.code, exitPartial)
	}
}

func TestLabRouterReboot(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	cfg := writeConfig(t, acceptance)
	portfwd(t, l, "apply", "--no-probe", cfg)
	if err := l.Reboot(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := portfwd(t, l, "apply", "--no-probe", "-o", "json", cfg)
	if doc := decode[applyDoc](t, r.stdout); r.code != exitOK || doc.Summary["create"] != acceptanceMappings {
		t.Errorf("apply after a router reboot: exit %d, summary %v; want everything restored", r.code, doc.Summary)
	}
}

func TestLabStatusShowsEverything(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	upnpc(t, l, "-e", "xbox", "-a", l.LANHost.String(), "3074", "3074", "UDP")
	cfg := writeConfig(t, acceptance)
	portfwd(t, l, "apply", "--no-probe", cfg)
	r := portfwd(t, l, "status", "-o", "json", cfg)
	st := decode[statusDoc](t, r.stdout)
	if r.code != exitOK || st.ExternalAddress != l.RouterWAN.String() || len(st.Mappings) != acceptanceMappings+1 {
		t.Fatalf("status: exit %d, external %q, %d mappings", r.code, st.ExternalAddress, len(st.Mappings))
	}
	owned := 0
	for _, m := range st.Mappings {
		if m.Ownership == "owned" {
			owned++
		}
	}
	if owned != acceptanceMappings || len(st.Gateway.Protocols) == 0 {
		t.Errorf("owned %d, protocols %v", owned, st.Gateway.Protocols)
	}
	if m := st.Mappings[0]; m.Rule != "minecraft" || m.RuleDescription != "friends' server" {
		t.Errorf("first mapping %+v; want minecraft's, with the rule's description", m)
	}
	table := portfwd(t, l, "status", cfg).stdout
	if !strings.Contains(table, "foreign") || !strings.Contains(table, "xbox") {
		t.Errorf("status table should show the foreign mapping:\n%s", table)
	}
}

// TestLabPermanentLeaseIsNoopAgain: a router grants a week for a
// "permanent" request (IGD:2); the next apply must not renew it.
func TestLabPermanentLeaseIsNoopAgain(t *testing.T) {
	for _, mode := range igdModes {
		t.Run(mode.name, func(t *testing.T) {
			l := lab.ForTest(t, mode.opts)
			cfg := writeConfig(t, "gateway:\n  lease: 0\n"+acceptance)
			if r := portfwd(t, l, "apply", "--no-probe", cfg); r.code != exitOK {
				t.Fatalf("apply: exit %d", r.code)
			}
			adds := l.AddPortMappingCount()
			r := portfwd(t, l, "apply", "--no-probe", "-o", "json", cfg)
			if doc := decode[applyDoc](t, r.stdout); r.code != exitOK || doc.Summary["noop"] != acceptanceMappings {
				t.Errorf("second apply: exit %d, summary %v; want all unchanged", r.code, doc.Summary)
			}
			if n := l.AddPortMappingCount(); n != adds {
				t.Errorf("second apply made %d AddPortMapping calls, want 0", n-adds)
			}
		})
	}
}

// TestLabChangedRuleIsUpdated: a rule whose internal port changed is
// replaced on the router, and traffic follows it.
func TestLabChangedRuleIsUpdated(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	l.Serve(t, lab.LAN, "tcp", 25566, "new server")
	if r := portfwd(t, l, "apply", "--no-probe", writeConfig(t, acceptance)); r.code != exitOK {
		t.Fatalf("apply: exit %d", r.code)
	}
	moved := strings.Replace(acceptance, "service: minecraft-java", "service: minecraft-java\n    internal_port: 25566", 1)
	r := portfwd(t, l, "apply", "--no-probe", "-o", "json", writeConfig(t, moved))
	if doc := decode[applyDoc](t, r.stdout); r.code != exitOK || doc.Summary["update"] != 1 || doc.Summary["noop"] != acceptanceMappings-1 {
		t.Fatalf("apply of the changed rule: exit %d, summary %v; want one update", r.code, doc.Summary)
	}
	if got, err := fromWAN(l, "tcp", 25565); err != nil || !strings.HasPrefix(got, "new server") {
		t.Errorf("tcp/25565 from WAN: %q, %v; want the server on internal port 25566", got, err)
	}
}
