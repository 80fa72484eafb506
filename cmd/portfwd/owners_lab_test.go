package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/internal/lab"
)

// Ownership follows the config (issue 13), on the real thing: the example
// configs minecraft.yaml and valheim.yaml, applied one after the other on
// one PC, keep both forwards on the router; down of one removes only its
// own; a rule removed from a file is pruned by that file's next apply.

// ownersBackend is one backend the two-config test runs on.
type ownersBackend struct {
	name string
	opts lab.Options
	on   lab.Host // where portfwd runs: the LAN host, or the router itself
	// tags is what the router itself holds as the forwards' descriptions,
	// when it keeps them (UPnP's listing, iptables comments); "" when the
	// protocol has none (PCP: portfwd's records hold them).
	tags func(t *testing.T, l *lab.Lab) string
}

var ownersBackends = []ownersBackend{
	{"upnp", lab.Options{}, lab.LAN, func(t *testing.T, l *lab.Lab) string { return upnpc(t, l, "-l") }},
	{"pcp", lab.Options{}, lab.LAN, func(t *testing.T, l *lab.Lab) string { return recordsText(t, l) }},
	{"natpmp", lab.Options{}, lab.LAN, func(t *testing.T, l *lab.Lab) string { return recordsText(t, l) }},
	{"iptables", lab.Options{Iptables: true}, lab.Router, func(t *testing.T, l *lab.Lab) string { return iptablesSave(t, l) }},
}

// recordsText is portfwd's records file (state.json) in the lab.
func recordsText(t *testing.T, l *lab.Lab) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.Dir, "state", "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ownersConfig is an example config of one game for backend b: the
// gateway section, and internal_host when portfwd runs on the router.
func ownersConfig(l *lab.Lab, b ownersBackend, rules ...string) string {
	host := ""
	if b.on == lab.Router {
		host = "    internal_host: " + l.LANHost.String() + "\n"
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "gateway:\n  backend: %s\nrules:\n", b.name)
	for _, r := range rules {
		sb.WriteString(r + host)
	}
	return sb.String()
}

const (
	ownersMinecraft = "  - name: minecraft\n    service: minecraft-java\n"
	ownersValheim   = "  - name: valheim\n    service: valheim\n"
	ownersWeb       = "  - name: web\n    protocol: tcp\n    external_port: 8080\n"
)

func TestLabTwoConfigsOnOnePC(t *testing.T) {
	for _, b := range ownersBackends {
		t.Run(b.name, func(t *testing.T) {
			l := lab.ForTest(t, b.opts)
			serveAt(t, l, "tcp", l.LANHost.String()+":25565", "minecraft on lan")
			serveAt(t, l, "udp", l.LANHost.String()+":2457", "valheim on lan")
			serveAt(t, l, "tcp", l.LANHost.String()+":8080", "web on lan")
			dir := t.TempDir()
			mc, vh := filepath.Join(dir, "minecraft.yaml"), filepath.Join(dir, "valheim.yaml")
			write := func(path, body string) {
				t.Helper()
				if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			run := func(args ...string) cli {
				t.Helper()
				return portfwdIn(t, l, b.on, nil, args...)
			}
			write(mc, ownersConfig(l, b, ownersMinecraft))
			write(vh, ownersConfig(l, b, ownersValheim))
			enable := []string{}
			if b.on == lab.Router {
				enable = []string{"--enable-forwarding"}
			}

			applied := func(file string, wantDeleted ...string) {
				t.Helper()
				r := run(append([]string{"apply", "--no-probe", "-o", "json", file}, enable...)...)
				doc := decode[applyDoc](t, r.stdout)
				var deleted []string
				for _, c := range doc.Changes {
					if c.Action == "delete" {
						deleted = append(deleted, c.Mapping)
					}
				}
				if r.code != exitOK || strings.Join(deleted, " ") != strings.Join(wantDeleted, " ") {
					t.Errorf("apply %s: exit %d, deleted %v, want %v\n%s%s", filepath.Base(file), r.code, deleted, wantDeleted, r.stdout, r.stderr)
				}
			}
			greeting := map[int]string{25565: "minecraft on lan", 2457: "valheim on lan", 8080: "web on lan"}
			reaches := func(network string, port int, want bool) {
				t.Helper()
				got, err := fromWAN(l, network, port)
				if ok := err == nil && strings.HasPrefix(got, greeting[port]); ok != want {
					t.Errorf("%s/%d from the WAN: %q, %v; want reachable %v", network, port, got, err, want)
				}
			}
			holds := func(tag string, want bool) {
				t.Helper()
				if got := strings.Contains(b.tags(t, l), tag); got != want {
					t.Errorf("the router holds %s: %v, want %v:\n%s", tag, got, want, b.tags(t, l))
				}
			}

			applied(mc)
			applied(vh)
			reaches("tcp", 25565, true)
			reaches("udp", 2457, true)
			holds("pf:minecraft:minecraft", true)
			holds("pf:valheim:valheim", true)

			if r := run("down", mc); r.code != exitOK || strings.Contains(r.stdout, "valheim") {
				t.Errorf("down minecraft.yaml: exit %d\n%s", r.code, r.stdout)
			}
			reaches("tcp", 25565, false)
			reaches("udp", 2457, true)
			holds("pf:minecraft:minecraft", false)
			holds("pf:valheim:valheim", true)

			applied(mc)
			write(vh, ownersConfig(l, b, ownersValheim, ownersWeb))
			applied(vh)
			reaches("tcp", 8080, true)
			write(vh, ownersConfig(l, b, ownersValheim))
			applied(mc)
			applied(vh, "tcp/8080")
			reaches("tcp", 8080, false)
			reaches("tcp", 25565, true)
			reaches("udp", 2457, true)
			holds("pf:valheim:web", false)
			holds("pf:minecraft:minecraft", true)
		})
	}
}

// Point 13 of issue 13: a game's own UPnP mapping that already forwards the
// port to this PC is in place, held by the game: apply exits 0, the server
// is reachable, and down leaves the game's mapping alone.
func TestLabHeldByAGame(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	l.Serve(t, lab.LAN, "tcp", 25565, "minecraft on lan")
	upnpc(t, l, "-e", "Xbox", "-a", l.LANHost.String(), "25565", "25565", "TCP")
	cfg := filepath.Join(t.TempDir(), "minecraft.yaml")
	if err := os.WriteFile(cfg, []byte("gateway:\n  backend: upnp\nrules:\n"+ownersMinecraft), 0o644); err != nil {
		t.Fatal(err)
	}
	adds := l.AddPortMappingCount()
	r := portfwd(t, l, "apply", "--no-probe", "-o", "json", cfg)
	doc := decode[applyDoc](t, r.stdout)
	if r.code != exitOK || len(doc.Changes) != 1 || doc.Changes[0].Action != "held" || doc.Changes[0].Result != "ok" ||
		!strings.Contains(doc.Changes[0].Note, `"Xbox"`) {
		t.Errorf("apply over the game's own mapping: exit %d, changes %+v; want 0 and held by \"Xbox\"", r.code, doc.Changes)
	}
	if n := l.AddPortMappingCount(); n != adds {
		t.Errorf("apply sent %d AddPortMapping over the game's mapping, want none", n-adds)
	}
	if got, err := fromWAN(l, "tcp", 25565); err != nil || !strings.HasPrefix(got, "minecraft on lan") {
		t.Errorf("from the WAN: %q, %v", got, err)
	}
	if r := portfwd(t, l, "down", cfg); r.code != exitOK {
		t.Errorf("down: exit %d", r.code)
	}
	if list := upnpc(t, l, "-l"); !strings.Contains(list, "Xbox") {
		t.Errorf("down removed the game's mapping:\n%s", list)
	}
}

// A forward made by portfwd before configs had names (description
// portfwd:<rule>) is adopted by the config that has the rule: re-tagged by
// an add over it. On PCP (portfwd's records, the same nonce) that is one
// MAP, and the port is never free; on UPnP the router keeps the old
// description on an add over it (miniupnpd: "updating existing port
// mapping"), so the IGD deletes it first: one DeletePortMapping.
func TestLabLegacyForwardAdopted(t *testing.T) {
	for _, backend := range []string{"upnp", "pcp"} {
		t.Run(backend, func(t *testing.T) {
			l := lab.ForTest(t, lab.Options{})
			l.Serve(t, lab.LAN, "tcp", 25565, "minecraft on lan")
			cfg := filepath.Join(t.TempDir(), "minecraft.yaml")
			if err := os.WriteFile(cfg, []byte("gateway:\n  backend: "+backend+"\nrules:\n"+ownersMinecraft), 0o644); err != nil {
				t.Fatal(err)
			}
			makeLegacy(t, l, backend, cfg)
			deletes, maps := l.SOAPActionCount("DeletePortMapping"), pcpMaps(l)
			r := portfwd(t, l, "apply", "--no-probe", "-o", "json", cfg)
			doc := decode[applyDoc](t, r.stdout)
			if r.code != exitOK || len(doc.Changes) != 1 || doc.Changes[0].Action != "renew" || !strings.Contains(doc.Changes[0].Reason, "re-tagging") {
				t.Fatalf("apply over the legacy forward: exit %d, changes %+v; want one re-tag", r.code, doc.Changes)
			}
			if n, want := l.SOAPActionCount("DeletePortMapping")-deletes, map[string]int{"upnp": 1, "pcp": 0}[backend]; n != want {
				t.Errorf("the re-tag sent %d DeletePortMapping, want %d", n, want)
			}
			if n, want := pcpMaps(l)-maps, map[string]int{"upnp": 0, "pcp": 1}[backend]; n != want {
				t.Errorf("the re-tag sent %d PCP MAP requests, want %d (a renewal, no delete)", n, want)
			}
			held := recordsOrListing(t, l, backend)
			if !strings.Contains(held, "pf:minecraft:minecraft") || strings.Contains(held, "portfwd:minecraft") {
				t.Errorf("after the re-tag the router/records hold:\n%s", held)
			}
			if got, err := fromWAN(l, "tcp", 25565); err != nil || !strings.HasPrefix(got, "minecraft on lan") {
				t.Errorf("from the WAN: %q, %v", got, err)
			}
			if r := portfwd(t, l, "plan", "--detailed-exitcode", cfg); r.code != exitOK {
				t.Errorf("plan after the re-tag: exit %d, want 0", r.code)
			}
		})
	}
}

// makeLegacy puts a forward of rule minecraft as an older portfwd made it:
// on UPnP with upnpc and the old description; on PCP by applying and then
// writing the old tag into the records.
func makeLegacy(t *testing.T, l *lab.Lab, backend, cfg string) {
	t.Helper()
	if backend == "upnp" {
		upnpc(t, l, "-e", "portfwd:minecraft", "-a", l.LANHost.String(), "25565", "25565", "TCP")
		return
	}
	if r := portfwd(t, l, "apply", "--no-probe", cfg); r.code != exitOK {
		t.Fatalf("apply: exit %d\n%s", r.code, r.stderr)
	}
	path := filepath.Join(l.Dir, "state", "state.json")
	old := strings.ReplaceAll(recordsText(t, l), "pf:minecraft:minecraft", "portfwd:minecraft")
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
}

// recordsOrListing is where the forwards' descriptions are kept.
func recordsOrListing(t *testing.T, l *lab.Lab, backend string) string {
	t.Helper()
	if backend == "upnp" {
		return upnpc(t, l, "-l")
	}
	return recordsText(t, l)
}
