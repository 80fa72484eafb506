package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/internal/lab"
)

// The external_port: any lab tests: another program holds tcp/25565, so
// the router grants portfwd another external port, which a rule that says
// any accepts and one with a fixed port does not.

// anyPortRule forwards tcp/25565 on this host through backend, from
// whatever external port the router grants.
func anyPortRule(backend, external string) string {
	return "gateway:\n  backend: " + backend + "\nrules:\n  - name: minecraft\n    protocol: tcp\n    external_port: " +
		external + "\n    internal_port: 25565\n"
}

// mapRequests counts the mapping requests miniupnpd served for backend.
func mapRequests(l *lab.Lab, backend string) int {
	switch backend {
	case "natpmp":
		return natpmpMaps(l)
	case "pcp":
		return pcpMaps(l)
	}
	return l.AddPortMappingCount()
}

func TestLabAnyExternalPort(t *testing.T) {
	for _, backend := range []string{"natpmp", "pcp", "upnp"} {
		t.Run(backend, func(t *testing.T) {
			l := lab.ForTest(t, lab.Options{})
			l.Serve(t, lab.LAN, "tcp", 25565, "minecraft on lan")
			// Another program on this host holds external tcp/25565 (to
			// its own internal port, so the router does not take it for
			// portfwd's NAT-PMP mapping of internal port 25565).
			upnpc(t, l, "-e", "other", "-a", l.LANHost.String(), "25570", "25565", "TCP")

			r := portfwd(t, l, "apply", "--no-probe", "-o", "json", writeConfig(t, anyPortRule(backend, "25565")))
			if doc := decode[applyDoc](t, r.stdout); r.code != exitPartial || doc.Failed != 1 {
				t.Errorf("a fixed port held by another program: exit %d, failed %d; want %d and 1", r.code, doc.Failed, exitPartial)
			}

			cfg := writeConfig(t, anyPortRule(backend, "any"))
			// With the check: it must look at the granted port, not at
			// 25565, which forwards to the other program.
			r = portfwd(t, l, "apply", "-o", "json", cfg)
			doc := decode[applyDoc](t, r.stdout)
			if r.code != exitOK || doc.Failed != 0 || len(doc.Changes) != 1 || doc.Changes[0].Granted == nil {
				t.Fatalf("apply of external_port: any: exit %d, %+v", r.code, doc)
			}
			c := doc.Changes[0]
			port := int(c.Granted.ExternalPort)
			if port == 25565 || !strings.Contains(c.Note, "granted external port "+strconv.Itoa(port)) {
				t.Errorf("granted %d, note %q; want another port than 25565, named in the note", port, c.Note)
			}
			if len(doc.Check) != 1 || doc.Check[0].Mapping != "tcp/"+strconv.Itoa(port) {
				t.Errorf("check = %+v; want it on the granted tcp/%d", doc.Check, port)
			}
			if got, err := fromWAN(l, "tcp", port); err != nil || !strings.HasPrefix(got, "minecraft on lan") {
				t.Errorf("tcp/%d from WAN: %q, %v", port, got, err)
			}

			maps := mapRequests(l, backend)
			r = portfwd(t, l, "apply", "--no-probe", "-o", "json", cfg)
			doc = decode[applyDoc](t, r.stdout)
			if r.code != exitOK || doc.Summary["noop"] != 1 || mapRequests(l, backend) != maps {
				t.Errorf("re-apply: exit %d, %v, %d more mapping requests; want a noop and none", r.code, doc.Summary, mapRequests(l, backend)-maps)
			}
			if len(doc.Changes) == 1 && doc.Changes[0].Mapping != "tcp/"+strconv.Itoa(port) {
				t.Errorf("re-apply acts on %s, want the granted tcp/%d", doc.Changes[0].Mapping, port)
			}
		})
	}
}
