package forward

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad checks that Load never panics nor runs past loadBudget (a load
// that stalls fails with its input, rather than stalling the fuzzer at 0
// execs/s), and that what it accepts is consistent: a config whose rules
// Desired can expand, or a *ConfigError with at least one located problem.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.yaml")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("rules:\n  - &r\n    name: a\n    <<: *r\n"))
	f.Add([]byte("rules:\n  - {name: a, protocol: both, external_port: 1-3, internal_host: h.lan}\n"))
	// Bombs: a load of each must end within loadBudget.
	f.Add([]byte("rules:\n  - &r\n    name: a\n    <<: [*r,*r,*r,*r,*r,*r,*r,*r]\n"))
	f.Add([]byte(mergeChain(7)))
	f.Add([]byte("rules:\n  - name: a\x00\n    description: caf\xe9\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// No DNS: short names resolve to a fixed address, others fail.
		lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
			if len(host)%2 == 0 {
				return []netip.Addr{netip.MustParseAddr("192.168.1.20")}, nil
			}
			return nil, errors.New("no such host")
		}
		cfg, err := loadWithin(t, "f.yaml", data, LoadOptions{LookupHost: lookup})
		if err != nil {
			checkFuzzError(t, err)
			return
		}
		checkFuzzConfig(t, cfg)
	})
}

func checkFuzzError(t *testing.T, err error) {
	var ce *ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) == 0 {
		t.Fatalf("error %T without problems: %v", err, err)
	}
	for _, d := range ce.Problems {
		if d.File != "f.yaml" || d.Line < 0 || d.Message == "" {
			t.Fatalf("bad diagnostic %+v", d)
		}
	}
}

func checkFuzzConfig(t *testing.T, cfg *Config) {
	if err := ValidateGateway(cfg.Gateway); err != nil {
		t.Fatalf("loaded gateway is invalid: %v", err)
	}
	names := make(map[string]bool)
	total := 0
	for _, r := range cfg.Rules {
		if names[r.Name] || !namePattern.MatchString(r.Name) {
			t.Fatalf("rule name %q duplicate or invalid", r.Name)
		}
		names[r.Name] = true
		if len(r.Protocols) == 0 || r.External.Len() == 0 || r.External.Len() != r.Internal.Len() || r.Probe == "" {
			t.Fatalf("invalid rule accepted: %+v", r)
		}
		total += r.External.Len() * len(r.Protocols)
	}
	desired := cfg.Desired(Hosts{Self: netip.MustParseAddr("192.168.1.10")}, Properties{})
	if len(desired) != total {
		t.Fatalf("Desired gave %d mappings, want %d", len(desired), total)
	}
	for i := 1; i < len(desired); i++ {
		if desired[i-1].Key.Compare(desired[i].Key) >= 0 {
			t.Fatalf("Desired not sorted or holds %s twice", desired[i].Key)
		}
	}
}
