package forward

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// loadBudget is the time any Load must finish in, whatever the input: a
// load that did not in the tests below was an exponential one, and it
// went on to take gigabytes. The slowest input here takes under 0.1 s;
// the margin is for a machine busy with other tests.
const loadBudget = 5 * time.Second

// loadWithin loads data as file, failing the test, with the input, if the
// load is still running after loadBudget.
func loadWithin(t testing.TB, file string, data []byte, opts LoadOptions) (*Config, error) {
	t.Helper()
	type result struct {
		cfg *Config
		err error
	}
	done := make(chan result, 1)
	go func() {
		cfg, _, err := Load(context.Background(), file, data, opts)
		done <- result{cfg, err}
	}()
	select {
	case r := <-done:
		return r.cfg, r.err
	case <-time.After(loadBudget):
		t.Fatalf("Load still running after %v on this %d-byte input:\n%q", loadBudget, len(data), data[:min(len(data), 2000)])
		return nil, nil
	}
}

// loadBounded is load within loadBudget.
func loadBounded(t *testing.T, src string) (*Config, error) {
	t.Helper()
	return loadWithin(t, "portfwd.yaml", []byte(src), LoadOptions{LookupHost: fakeLookup})
}

// aliases is n aliases *name, comma-separated, for a flow list.
func aliases(name string, n int) string {
	return strings.TrimSuffix(strings.Repeat("*"+name+",", n), ",")
}

// mergeChain is rules that each merge the one before 8 times over: no
// mapping merges itself, yet the last one stands for 8^levels merges.
func mergeChain(levels int) string {
	src := "rules:\n  - &r0 {name: a, protocol: tcp, external_port: 2000}\n"
	for i := 1; i <= levels; i++ {
		src += fmt.Sprintf("  - &r%d {<<: [%s], name: r%d}\n", i, aliases(fmt.Sprint("r", i-1), 8), i)
	}
	return src
}

// TestLoadBombs loads files made to take a load past any bound, each
// refused at once, with the line and key that went past and why.
func TestLoadBombs(t *testing.T) {
	longName := strings.Repeat("a", 1000*1000)
	for _, tc := range []struct {
		name string
		src  string
		want want
	}{
		// The 60-byte file: 8 merges of itself at each of 8 levels.
		{"merge fan-out 8", "rules:\n  - &r\n    name: a\n    <<: [" + aliases("r", 8) + "]\n",
			want{4, "rules[0].<<", "the file expands to more than 50000 keys"}},
		{"merge fan-out 6", "rules:\n  - &r\n    name: a\n    <<: [" + aliases("r", 6) + "]\n",
			want{4, "rules[0].<<", "counting every key a merge key (<<) or an alias brings in each time it does"}},
		{"merges of merges", mergeChain(7), want{7, "rules[5].<<", "the file expands to more than 50000 keys"}},
		{"a merge list of 60,000", "rules:\n  - &r {name: a}\n  - <<: [" + aliases("r", 60_000) + "]\n",
			want{3, "rules[1].<<", "the file expands to more than 50000 keys"}},
		{"a big mapping through aliases", "gateway: &g {" + manyKeys(900) + "}\nrules: [" + aliases("g", 999) + "]\n",
			want{2, "rules[54]", "the file expands to more than 50000 keys"}},
		{"too many rules", "rules:\n  - &r {name: a, protocol: tcp, external_port: 2000}\n" + strings.Repeat("  - *r\n", 1000),
			want{1002, "rules", "1001 rules, more than the 1000 portfwd takes"}},
		{"over 1 MiB", "rules: []\n" + strings.Repeat("# a comment of 51 bytes, to make the file large ..\n", 25000),
			want{1 + (1<<20-len("rules: []\n"))/51 + 1, "", "the file is over 1 MiB (1048576 bytes)"}},
		{"a long value through aliases", "rules:\n  - name: &n " + longName + "\n" + strings.Repeat("  - name: *n\n", 999),
			want{2, "rules[0].name", "the value is 1000000 bytes long, more than the 1024 any value of a config takes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			cfg, err := loadBounded(t, tc.src)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatalf("loaded: %d rules", len(cfg.Rules))
			}
			got := problems(t, err)
			if d := got[0]; d.Line != tc.want.line || d.Key != tc.want.key || !strings.Contains(d.Message, tc.want.msg) {
				t.Errorf("first problem %q, want %d: %s: %s", d, tc.want.line, tc.want.key, tc.want.msg)
			}
			if len(got) > maxProblemsShown+1 || len(err.Error()) > 64<<10 {
				t.Errorf("%d problems in %d bytes, want at most %d lines", len(got), len(err.Error()), maxProblemsShown+1)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
				t.Errorf("the load allocated %d MB", alloc>>20)
			} else {
				t.Logf("%d kB allocated", alloc>>10)
			}
		})
	}
}

// manyKeys is n distinct keys k000… of a flow mapping.
func manyKeys(n int) string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%03d: 1", i)
	}
	return strings.Join(keys, ", ")
}

// TestLoadWithinLimits loads the largest files the limits let through:
// 1,000 rules written out in full, every one merging defaults.
func TestLoadWithinLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString("gateway:\n  lease: 2h\nrules:\n  - &d {name: d0, protocol: tcp, external_port: 1025, internal_host: nas.lan, hairpin: false, description: defaults}\n")
	for i := 1; i < maxRules; i++ {
		fmt.Fprintf(&b, "  - <<: *d\n    name: r%d\n    external_port: %d\n    internal_port: %d\n    probe: tcp\n    description: rule %d of the largest config portfwd takes\n", i, 1025+i, 1025+i, i)
	}
	start := time.Now()
	cfg, err := loadBounded(t, b.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Rules) != maxRules || b.Len() > maxConfigBytes/2 {
		t.Errorf("%d rules from %d bytes", len(cfg.Rules), b.Len())
	}
	t.Logf("%d rules, %d bytes, loaded in %v", len(cfg.Rules), b.Len(), time.Since(start))
}

// TestLoadProblemsCapped: past maxProblemsShown, the first ones by line
// are listed and one more line says how many were left out.
func TestLoadProblemsCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range 120 {
		fmt.Fprintf(&b, "  - {name: r%d, protocol: tcp, external_port: 0}\n", i)
	}
	_, err := loadBounded(t, b.String())
	got := problems(t, err)
	if len(got) != maxProblemsShown+1 || got[0].Line != 2 || got[maxProblemsShown-1].Line != maxProblemsShown+1 {
		t.Fatalf("%d problems:\n%v", len(got), err)
	}
	if last := got[maxProblemsShown]; last.String() != "portfwd.yaml: … and 70 more problems not shown" {
		t.Errorf("last line %q", last)
	}
	var ce *ConfigError
	if errors.As(err, &ce); ce.Count() != 120 {
		t.Errorf("Count = %d, want all 120 problems", ce.Count())
	}
}

// TestLoadMergedMistakeOnce: a mapping merged in many times is one
// mistake, reported once.
func TestLoadMergedMistakeOnce(t *testing.T) {
	_, err := loadBounded(t, "rules:\n  - <<: [5, 5, 5]\n    name: a\n    service: ssh\n")
	checkDiags(t, problems(t, err), []want{{2, "rules[0]", "a merge key (<<) takes a mapping or a list of mappings, got \"5\""}})
}

// TestLoadFileEndless: LoadFile reads no more than a config may hold, so
// a path to an endless file is refused rather than read until memory
// runs out.
func TestLoadFileEndless(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := LoadFile(context.Background(), "/dev/zero", LoadOptions{LookupHost: fakeLookup})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "/dev/zero:1: the file is over 1 MiB") {
			t.Errorf("err = %v", err)
		}
	case <-time.After(loadBudget):
		t.Fatalf("LoadFile(/dev/zero) still reading after %v", loadBudget)
	}
}
