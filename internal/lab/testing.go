package lab

import (
	"context"
	"os"
	"strings"
	"testing"
)

// ForTest brings a lab up for t and tears it down when t ends, dumping the
// miniupnpd log if t failed.
//
// Without root or a program the lab needs, t is skipped, unless PORTFWD_LAB=1
// or CI=true: there the lab tests are the proof that features work, so a
// missing prerequisite fails the test instead of silently skipping it.
func ForTest(t testing.TB, opts Options) *Lab {
	t.Helper()
	if err := Prerequisites(); err != nil {
		if mustRun() {
			t.Fatalf("lab prerequisites missing (PORTFWD_LAB=1 or CI=true): %v", err)
		}
		t.Skipf("lab test skipped: %v\nrun it with `make test` as root, or PORTFWD_LAB=1 go test as root", err)
	}
	if opts.Log == nil {
		opts.Log = testWriter{t}
	}
	l, err := Up(context.Background(), opts)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("miniupnpd log of lab %s:\n%s", l.Name, l.MiniupnpdLog())
		}
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return l
}

func mustRun() bool {
	return os.Getenv("PORTFWD_LAB") == "1" || os.Getenv("CI") == "true"
}

// testWriter sends the lab's progress lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
