package lab

import (
	"context"
	"fmt"
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
// go test -short skips every lab test, even as root: the lab takes minutes.
//
// A lab test's top-level name starts with TestLab or BenchmarkLab: make
// test runs the unit tests (all others) and the lab tests in separate
// passes, selected by name, and ForTest fails a test that would blur them.
func ForTest(t testing.TB, opts Options) *Lab {
	t.Helper()
	skip, err := gate(t.Name(), testing.Short(), os.Getenv, Prerequisites)
	if err != nil {
		t.Fatal(err)
	}
	if skip != "" {
		t.Skip(skip)
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

// gate decides whether a lab test runs: err fails it, a non-empty skip
// skips it, and neither brings the lab up.
func gate(test string, short bool, getenv func(string) string, prerequisites func() error) (skip string, err error) {
	if err := misplaced(test, getenv); err != nil {
		return "", err
	}
	if short {
		return "lab test skipped in -short mode (make lab-test runs it)", nil
	}
	if err := prerequisites(); err != nil {
		if getenv("PORTFWD_LAB") == "1" || getenv("CI") == "true" {
			return "", fmt.Errorf("lab prerequisites missing (PORTFWD_LAB=1 or CI=true): %w", err)
		}
		return fmt.Sprintf("lab test skipped: %v\nrun it with `make test` as root, or PORTFWD_LAB=1 go test as root", err), nil
	}
	return "", nil
}

// unitEnv is set to 1 by the Makefile in the unit pass, where no lab may
// come up.
const unitEnv = "PORTFWD_UNIT"

// misplaced says why test must not bring up a lab: it runs in the unit
// pass, in a lab child, or its name does not make it a lab test.
func misplaced(test string, getenv func(string) string) error {
	top := topLevel(test)
	switch {
	case getenv(childEnv) != "":
		return fmt.Errorf("lab.ForTest in a lab child of %s: call lab.ChildOf first and run the child part when it reports one", top)
	case !strings.HasPrefix(top, "TestLab") && !strings.HasPrefix(top, "BenchmarkLab"):
		return fmt.Errorf("lab test %s: name it TestLab… (or BenchmarkLab…) so that make test runs it in the lab pass", top)
	case getenv(unitEnv) == "1":
		return fmt.Errorf("lab test %s in the unit pass (%s=1): the unit pass must skip ^TestLab", top, unitEnv)
	}
	return nil
}

// testWriter sends the lab's progress lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
