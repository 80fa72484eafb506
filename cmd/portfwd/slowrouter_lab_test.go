package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/internal/lab"
)

// slowRouter is the lab's slow router: miniupnpd as Debian and OpenWrt
// ship it (IPv6 on), every AddPortMapping slower as its table grows, 50
// of them in about half a minute (LAB.md).
var slowRouter = lab.Options{IPv6On: true, LogLineCost: lab.SlowRouterLogLine}

// TestLabSlowRouter50Rules: a cold apply of 50 rules on the slow router,
// with the default --timeout, makes every forward and exits 0. Its 50
// AddPortMapping take far longer than --timeout together, each far less:
// when --timeout bounded the whole run, the rules after its first 15 s
// failed with "context deadline exceeded" (issue 12).
func TestLabSlowRouter50Rules(t *testing.T) {
	l := lab.ForTest(t, slowRouter)
	r := portfwd(t, l, "apply", "--no-probe", rulesFile(t, 50, ""))
	if r.code != exitOK || !strings.Contains(r.stderr, "Apply: 50 change(s) made, 0 failed") {
		t.Fatalf("apply: exit %d; want 0 and 50 made", r.code)
	}
	listed, err := l.Mappings(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if !strings.Contains(listed, fmt.Sprintf("%d->%s:%d 'pf:portfwd:r%d'", 30000+i, l.LANHost, 30000+i, i)) {
			t.Errorf("upnpc -l does not list r%d on tcp/%d:\n%s", i, 30000+i, listed)
		}
	}
}
