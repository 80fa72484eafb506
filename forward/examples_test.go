package forward_test

import (
	"context"
	"net/netip"
	"path/filepath"
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
		if len(cfg.Desired(netip.MustParseAddr("192.168.1.10"), forward.Properties{})) == 0 {
			t.Errorf("%s: no forwards", f)
		}
	}
}
