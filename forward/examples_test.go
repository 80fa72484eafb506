package forward_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/forward"
)

// TestExampleConfigsLoad keeps the examples shipped in configs/ valid.
func TestExampleConfigsLoad(t *testing.T) {
	files, err := filepath.Glob("../configs/*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("found %d example configs (%v), want at least 3", len(files), err)
	}
	noDNS := forward.LoadOptions{LookupHost: func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("192.168.1.20")}, nil
	}}
	for _, f := range files {
		cfg, _, err := forward.LoadFile(context.Background(), f, noDNS)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if len(cfg.Desired(forward.Hosts{Self: netip.MustParseAddr("192.168.1.10")}, forward.Properties{})) == 0 {
			t.Errorf("%s: no forwards", f)
		}
	}
}

// serviceComment is a rule line naming a service with the ports it brings
// as a comment, as the examples write them: "service: valheim  # udp 2456-2457".
var serviceComment = regexp.MustCompile(`service:\s*([a-z0-9-]+)\s*#\s*((?:tcp|udp)(?:(?:\s*\+\s*|\s+and\s+)(?:tcp|udp))?)\s+(\d+(?:-\d+)?)`)

// TestExampleCommentsMatchCatalog keeps the protocol and ports written
// beside "service:" in configs/ and the README equal to the catalog's.
func TestExampleCommentsMatchCatalog(t *testing.T) {
	files, _ := filepath.Glob("../configs/*.yaml")
	files = append(files, "../README.md")
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range serviceComment.FindAllStringSubmatch(string(b), -1) {
			seen++
			svc, ok := forward.LookupService(m[1])
			if !ok {
				t.Errorf("%s: %q names no catalog service", f, m[0])
				continue
			}
			var protos []string
			for _, p := range svc.Protocols {
				protos = append(protos, string(p))
			}
			got := strings.Join(strings.FieldsFunc(m[2], func(r rune) bool { return r == ' ' || r == '+' }), " ")
			if want := strings.Join(protos, " "); strings.ReplaceAll(got, " and ", " ") != want || m[3] != svc.Ports.String() {
				t.Errorf("%s: %q, but the catalog says %s %s", f, m[0], want, svc.Ports)
			}
		}
	}
	if seen < 5 {
		t.Errorf("found %d service comments, want the examples' (at least 5): has the format changed?", seen)
	}
}
