package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/internal/lab"
)

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
