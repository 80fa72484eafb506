package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portfwd/portfwd/internal/lab"
)

// The NAT-PMP lab tests: a protocol that cannot list mappings, so portfwd
// answers from its state file; miniupnpd's log and upnpc -l show what the
// router really holds.

// stateRules forwards a TCP and a UDP game through backend.
func stateRules(backend string) string {
	return "gateway:\n  backend: " + backend + "\nrules:\n" + minecraftAndBedrock
}

const minecraftAndBedrock = `  - name: minecraft
    service: minecraft-java
  - name: bedrock
    service: minecraft-bedrock
`

// natpmpMaps counts the NAT-PMP port mapping requests miniupnpd served.
func natpmpMaps(l *lab.Lab) int {
	return strings.Count(l.MiniupnpdLog(), "NAT-PMP port mapping request")
}

// routerHolds is the router's own list of mappings, through UPnP.
func routerHolds(t *testing.T, l *lab.Lab) string {
	t.Helper()
	return upnpc(t, l, "-l")
}

// TestLabStateBackends: NAT-PMP and PCP, which cannot list, forward TCP
// and UDP, send no mapping request on a re-apply, and delete a removed
// rule on the router.
func TestLabStateBackends(t *testing.T) {
	for _, tt := range []struct {
		backend  string
		requests func(*lab.Lab) int // mapping requests miniupnpd logged
	}{{"natpmp", natpmpMaps}, {"pcp", pcpMaps}} {
		t.Run(tt.backend, func(t *testing.T) {
			l := lab.ForTest(t, lab.Options{})
			l.Serve(t, lab.LAN, "tcp", 25565, "minecraft on lan")
			l.Serve(t, lab.LAN, "udp", 19132, "bedrock on lan")
			cfg := writeConfig(t, stateRules(tt.backend))
			r := portfwd(t, l, "apply", "--no-probe", "-o", "json", cfg)
			if doc := decode[applyDoc](t, r.stdout); r.code != exitOK || doc.Summary["create"] != 2 || doc.Gateway.Backend != tt.backend {
				t.Fatalf("apply: exit %d, %+v", r.code, doc)
			}
			for _, p := range []struct {
				network string
				port    int
				want    string
			}{{"tcp", 25565, "minecraft on lan"}, {"udp", 19132, "bedrock on lan: ping"}} {
				if got, err := fromWAN(l, p.network, p.port); err != nil || !strings.HasPrefix(got, p.want) {
					t.Errorf("%s/%d from WAN: %q, %v", p.network, p.port, got, err)
				}
			}
			made := tt.requests(l)
			if made < 2 {
				t.Fatalf("miniupnpd logged %d mapping requests for two mappings; the count is wrong", made)
			}
			if r := portfwd(t, l, "apply", "--no-probe", cfg); r.code != exitOK || tt.requests(l) != made {
				t.Errorf("re-apply: exit %d, %d more mapping requests; want 0", r.code, tt.requests(l)-made)
			}
			onlyTCP := strings.Replace(stateRules(tt.backend), "  - name: bedrock\n    service: minecraft-bedrock\n", "", 1)
			r = portfwd(t, l, "apply", "--no-probe", "-o", "json", writeConfig(t, onlyTCP))
			if doc := decode[applyDoc](t, r.stdout); r.code != exitOK || doc.Summary["delete"] != 1 {
				t.Errorf("removing a rule: exit %d, %v", r.code, doc.Summary)
			}
			if held := routerHolds(t, l); !strings.Contains(held, "25565") || strings.Contains(held, "19132") {
				t.Errorf("the router should hold tcp/25565 and no longer udp/19132:\n%s", held)
			}
		})
	}
}

func TestLabAutoPicksAWorkingProtocol(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts lab.Options
		want string
	}{
		{"everything on", lab.Options{}, "upnp"},
		{"UPnP off", lab.Options{NoUPnP: true}, "pcp"},
		{"NAT-PMP and PCP off", lab.Options{NoNATPMP: true}, "upnp"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := lab.ForTest(t, tt.opts)
			l.Serve(t, lab.LAN, "tcp", 25565, "minecraft on lan")
			r := portfwd(t, l, "apply", "--no-probe", "-o", "json", writeConfig(t, minecraftRule))
			doc := decode[applyDoc](t, r.stdout)
			if r.code != exitOK || doc.Gateway.Backend != tt.want || doc.Gateway.Why == "" {
				t.Fatalf("exit %d, chose %q (answered %v, why %q); want %s", r.code, doc.Gateway.Backend, doc.Gateway.Answered, doc.Gateway.Why, tt.want)
			}
			if got, err := fromWAN(l, "tcp", 25565); err != nil || !strings.HasPrefix(got, "minecraft on lan") {
				t.Errorf("from WAN: %q, %v", got, err)
			}
		})
	}
}

func TestLabNATPMPRouterReboot(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	l.Serve(t, lab.LAN, "tcp", 25565, "minecraft on lan")
	cfg := writeConfig(t, stateRules("natpmp"))
	portfwd(t, l, "apply", "--no-probe", cfg)
	// RFC 6886 §3.6 forgives 2 s of clock skew: let the epoch count past it,
	// so the restart is told apart.
	time.Sleep(3500 * time.Millisecond)
	if err := l.Reboot(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := portfwd(t, l, "apply", "--no-probe", "-o", "json", cfg)
	if doc := decode[applyDoc](t, r.stdout); r.code != exitOK || doc.Summary["create"] != 2 || !strings.Contains(r.stderr, "restarted") {
		t.Errorf("apply after reboot: exit %d, %v; want both re-created and the epoch reset reported:\n%s", r.code, doc.Summary, r.stderr)
	}
	if got, err := fromWAN(l, "tcp", 25565); err != nil || !strings.HasPrefix(got, "minecraft on lan") {
		t.Errorf("from WAN after reboot and apply: %q, %v", got, err)
	}
}

// TestLabKilledApplyRecovers: kill -9 in the middle of an apply of 20
// rules; the state file stays readable and the next apply ends correct.
func TestLabKilledApplyRecovers(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	var b strings.Builder
	b.WriteString("gateway:\n  backend: natpmp\nrules:\n")
	for i := 0; i < 20; i++ {
		b.WriteString("  - name: r" + string(rune('a'+i)) + "\n    protocol: tcp\n    external_port: " + strconv.Itoa(41000+i) + "\n")
	}
	cfg := writeConfig(t, b.String())
	state := filepath.Join(l.Dir, "state", "state.json")
	cmd := l.Command(lab.LAN, binary(t), "apply", "--no-probe", cfg)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(l.Dir, "cache"), "PORTFWD_STATE_DIR="+filepath.Dir(state))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); natpmpMaps(l) < 5 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
	}
	// ip netns exec execs portfwd in place, so this is portfwd itself.
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	made := natpmpMaps(l)
	t.Logf("kill -9 after %d of 20 mapping requests", made)
	if made >= 20 {
		t.Fatalf("the apply finished before it was killed; the test proves nothing")
	}
	if raw, err := os.ReadFile(state); err == nil && !json.Valid(raw) {
		t.Fatalf("state file torn by kill -9:\n%s", raw)
	}
	r := portfwd(t, l, "apply", "--no-probe", "-o", "json", cfg)
	doc := decode[applyDoc](t, r.stdout)
	if r.code != exitOK || doc.Summary["create"]+doc.Summary["noop"] != 20 {
		t.Fatalf("apply after kill -9 (%d mappings made before): exit %d, %v", made, r.code, doc.Summary)
	}
	if n := strings.Count(routerHolds(t, l), "NAT-PMP 410"); n != 20 {
		t.Errorf("the router holds %d of the 20 mappings", n)
	}
	raw, _ := os.ReadFile(state)
	var st recordsFile
	if err := json.Unmarshal(raw, &st); err != nil || len(st.Gateways) != 1 || len(st.Gateways[0].Entries) != 20 {
		t.Errorf("state after recovery: %v, %+v", err, st)
	}
}

func TestLabCorruptStateIsAWarning(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	dir := filepath.Join(l.Dir, "state")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "state.json"), []byte("{\"format_version\": 1, \"gateways\": [{"), 0o644)
	r := portfwd(t, l, "apply", "--no-probe", writeConfig(t, stateRules("natpmp")))
	if r.code != exitOK || !strings.Contains(r.stderr, "warning: state file") || !strings.Contains(r.stderr, "unreadable") {
		t.Errorf("exit %d; want success and a warning about the state file:\n%s", r.code, r.stderr)
	}
}
