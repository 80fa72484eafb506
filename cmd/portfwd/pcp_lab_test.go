package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/internal/lab"
)

const pcpRules = `gateway:
  backend: pcp
rules:
  - name: minecraft
    service: minecraft-java
  - name: bedrock
    service: minecraft-bedrock
`

func TestLabPCPBackend(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	l.Serve(t, lab.LAN, "tcp", 25565, "minecraft on lan")
	l.Serve(t, lab.LAN, "udp", 19132, "bedrock on lan")
	cfg := writeConfig(t, pcpRules)
	r := portfwd(t, l, "apply", "--no-probe", "-o", "json", cfg)
	if doc := decode[applyDoc](t, r.stdout); r.code != exitOK || doc.Summary["create"] != 2 || doc.Gateway.Backend != "pcp" {
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
	maps := pcpMaps(l)
	if maps < 2 {
		t.Fatalf("miniupnpd logged %d PCP MAP requests for two mappings; the count is wrong", maps)
	}
	if r := portfwd(t, l, "apply", "--no-probe", cfg); r.code != exitOK || pcpMaps(l) != maps {
		t.Errorf("re-apply: exit %d, %d more MAP requests; want none", r.code, pcpMaps(l)-maps)
	}
	onlyTCP := strings.Replace(pcpRules, "  - name: bedrock\n    service: minecraft-bedrock\n", "", 1)
	if r := portfwd(t, l, "apply", "--no-probe", writeConfig(t, onlyTCP)); r.code != exitOK {
		t.Errorf("removing a rule: exit %d", r.code)
	}
	if held := routerHolds(t, l); !strings.Contains(held, "25565") || strings.Contains(held, "19132") {
		t.Errorf("the router should hold tcp/25565 and no longer udp/19132:\n%s", held)
	}
}

// TestLabPCPThirdParty: a rule for the second LAN address works where the
// gateway allows third-party mappings and is refused clearly where not;
// auto picks PCP for it.
func TestLabPCPThirdParty(t *testing.T) {
	for _, allowed := range []bool{false, true} {
		t.Run(map[bool]string{false: "refused", true: "allowed"}[allowed], func(t *testing.T) {
			l := lab.ForTest(t, lab.Options{PCPThirdParty: allowed})
			l.Serve(t, lab.LAN, "tcp", 8443, "nas on lan")
			cfg := writeConfig(t, "rules:\n  - name: nas\n    protocol: tcp\n    external_port: 8443\n    internal_host: "+l.LANHost2.String()+"\n")
			r := portfwd(t, l, "apply", "--no-probe", "-o", "json", cfg)
			doc := decode[applyDoc](t, r.stdout)
			if doc.Gateway.Backend != "pcp" {
				t.Errorf("auto chose %q for a third-party rule, want pcp (why: %s)", doc.Gateway.Backend, doc.Gateway.Why)
			}
			if !allowed {
				if r.code != exitPartial || !strings.Contains(r.stdout, "pcp_allow_thirdparty") {
					t.Errorf("exit %d; want %d and the way to allow it:\n%s", r.code, exitPartial, r.stdout)
				}
				return
			}
			if r.code != exitOK {
				t.Fatalf("apply: exit %d", r.code)
			}
			if got, err := fromWAN(l, "tcp", 8443); err != nil || !strings.HasPrefix(got, "nas on lan") {
				t.Errorf("from WAN: %q, %v", got, err)
			}
		})
	}
}

// pcpRequest is how miniupnpd logs each PCP request it receives.
var pcpRequest = regexp.MustCompile(`PCP request received from \S+ (\d+)bytes`)

// pcpMaps counts the PCP requests other than ANNOUNCE (24 bytes, a bare
// header; RFC 6887 §7.1): the MAP requests.
func pcpMaps(l *lab.Lab) int {
	n := 0
	for _, m := range pcpRequest.FindAllStringSubmatch(l.MiniupnpdLog(), -1) {
		if m[1] != "24" {
			n++
		}
	}
	return n
}
