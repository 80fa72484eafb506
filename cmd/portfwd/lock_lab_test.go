package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/portfwd/portfwd/internal/lab"
)

// TestLabConcurrentForcedUPnP: ten applies at once of ten rules, with
// backend upnp named (which used to take no lock: ~62 AddPortMapping for 10
// rules, and with 50 rules every run exited 3), are serialised by the run
// lock: every run succeeds or says another portfwd is changing the
// gateway, the router gets exactly one AddPortMapping per rule, and holds
// all ten.
func TestLabConcurrentForcedUPnP(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	var rules strings.Builder
	rules.WriteString("gateway: {backend: upnp}\nrules:\n")
	for i := range 10 {
		fmt.Fprintf(&rules, "  - {name: r%d, protocol: tcp, external_port: %d}\n", i, 30001+i)
	}
	cfg := writeConfig(t, rules.String())
	before := l.AddPortMappingCount()
	results := make([]cli, 10)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i] = portfwd(t, l, "apply", "--no-probe", cfg) })
	}
	wg.Wait()
	for i, r := range results {
		if r.code != exitOK && !strings.Contains(r.stderr, "another portfwd is changing the gateway") {
			t.Errorf("apply %d: exit %d without the lock message:\n%s", i, r.code, r.stderr)
		}
	}
	if n := l.AddPortMappingCount() - before; n != 10 {
		t.Errorf("the router served %d AddPortMapping for 10 rules; want 10, one per rule", n)
	}
	held := upnpc(t, l, "-l")
	for i := range 10 {
		if !strings.Contains(held, fmt.Sprintf("TCP %d->", 30001+i)) {
			t.Errorf("the router does not hold tcp/%d:\n%s", 30001+i, held)
		}
	}
}
