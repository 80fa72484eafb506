package lab

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// childEnv carries a lab child's Child, as JSON, from RunChild to ChildOf.
const childEnv = "PORTFWD_LAB_CHILD"

// Child is the lab as a test re-run inside one of its namespaces sees it.
//
// A test re-runs itself when what it proves must happen entirely on one
// lab host: lab.Do moves only the calling goroutine into a namespace, and
// goupnp's HTTP dials or the conformance suite's subtests run on others.
type Child struct {
	Test  string // the top-level test re-run
	Phase string // which part of the test to run; "" when there is one
	Host  Host   // the namespace the child runs in
	// Dir is shared by the parent with every phase. It outlives Reboot, as
	// a state directory on the user's PC outlives a router reboot.
	Dir string

	WANHost, RouterWAN           netip.Addr
	RouterLAN, LANHost, LANHost2 netip.Addr
	RootDescURL                  string
	// The IPv6 lab's addresses (Options.IPv6), else zero.
	WANHost6, RouterWAN6, RouterLAN6, LANHost6 netip.Addr
	RootDescURL6                               string

	// Env is ChildOptions.Env, which is also in the child's environment.
	Env map[string]string
}

// ChildOptions is what RunChild passes to a child besides the lab itself.
type ChildOptions struct {
	// Dir is Child.Dir; "" is a directory of the lab's own, the same for
	// every RunChild on the lab, removed by Down.
	Dir string
	// Env is set in the child's environment and handed over as Child.Env.
	Env map[string]string
	// Path holds directories put before $PATH in the child, e.g. one whose
	// iptables is iptables-legacy.
	Path []string
}

// ChildOf reports whether this process is a lab child started by RunChild
// for t's top-level test, and returns the lab as the child sees it. A test
// that re-runs itself calls it first and runs its child part when it is
// one:
//
//	if c, ok := lab.ChildOf(t); ok {
//		child(t, c)
//		return
//	}
//	l := lab.ForTest(t, lab.Options{})
//	…
//	l.RunChild(t, lab.LAN, "", lab.ChildOptions{})
func ChildOf(t *testing.T) (*Child, bool) {
	t.Helper()
	s, ok := os.LookupEnv(childEnv)
	if !ok {
		return nil, false
	}
	var c Child
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		t.Fatalf("lab child: reading $%s: %v", childEnv, err)
	}
	if top := topLevel(t.Name()); top != c.Test {
		t.Fatalf("lab child of %s reached %s", c.Test, top)
	}
	t.Log(c.marker())
	return &c, true
}

// RunChild re-runs t's top-level test (this test binary, -test.run on
// exactly its name) inside h's namespace as the child for phase, logs the
// child's output, and fails t unless the child passed having run its child
// part: a child that skips, runs no test or never calls ChildOf fails.
// Phases that share state run as successive RunChild calls, with whatever
// the parent does to the lab (Reboot) in between.
func (l *Lab) RunChild(t *testing.T, h Host, phase string, opts ChildOptions) {
	t.Helper()
	c, err := l.child(topLevel(t.Name()), h, phase, opts)
	if err != nil {
		t.Fatal(err)
	}
	cmd := l.Command(h, os.Args[0], childArgs(t, c.Test)...)
	if cmd.Env, err = childEnviron(c, opts.Path); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	t.Logf("lab child %s phase %q in %s:\n%s", c.Test, phase, l.Namespace(h), out)
	if err := childResult(c, string(out), err); err != nil {
		t.Fatal(err)
	}
}

// child is the Child RunChild hands over.
func (l *Lab) child(test string, h Host, phase string, opts ChildOptions) (*Child, error) {
	dir := opts.Dir
	if dir == "" {
		dir = filepath.Join(l.Dir, "child")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("lab child dir: %w", err)
		}
	}
	return &Child{Test: test, Phase: phase, Host: h, Dir: dir,
		WANHost: l.WANHost, RouterWAN: l.RouterWAN, RouterLAN: l.RouterLAN, LANHost: l.LANHost, LANHost2: l.LANHost2,
		RootDescURL: l.RootDescURL, WANHost6: l.WANHost6, RouterWAN6: l.RouterWAN6, RouterLAN6: l.RouterLAN6,
		LANHost6: l.LANHost6, RootDescURL6: l.RootDescURL6, Env: opts.Env}, nil
}

// childArgs runs exactly test, verbosely (the marker and "--- PASS" are in
// -test.v output), uncached, and times the child out before the parent's
// deadline, so a hung child's goroutine dump reaches the parent's log.
func childArgs(t *testing.T, test string) []string {
	args := []string{"-test.run=^" + regexp.QuoteMeta(test) + "$", "-test.v", "-test.count=1"}
	if d, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout="+max(time.Until(d)*9/10, time.Second).String())
	}
	return args
}

// childEnviron is this process's environment with the child's Child, its
// Env and path before $PATH.
func childEnviron(c *Child, path []string) ([]string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("lab child: %w", err)
	}
	env := append(os.Environ(), childEnv+"="+string(b))
	for k, v := range c.Env {
		env = append(env, k+"="+v)
	}
	if len(path) > 0 {
		// exec.Cmd keeps the last of duplicate variables.
		env = append(env, "PATH="+strings.Join(append(path, os.Getenv("PATH")), string(os.PathListSeparator)))
	}
	return env, nil
}

// childResult is nil when the child exited 0, logged its marker and passed
// its test.
func childResult(c *Child, out string, runErr error) error {
	switch {
	case runErr != nil:
		return fmt.Errorf("lab child %s phase %q failed: %w", c.Test, c.Phase, runErr)
	case !strings.Contains(out, c.marker()):
		return fmt.Errorf("lab child %s phase %q did not run its child part (no %q in its output): call lab.ChildOf first in the test", c.Test, c.Phase, c.marker())
	case !strings.Contains(out, "--- PASS: "+c.Test+" ("):
		return fmt.Errorf("lab child %s phase %q did not pass", c.Test, c.Phase)
	}
	return nil
}

// marker is the line a child logs when it runs its child part.
func (c *Child) marker() string {
	return fmt.Sprintf("lab child %s: phase %q on the %s host", c.Test, c.Phase, c.Host)
}

// topLevel is the top-level test of a test or subtest name.
func topLevel(name string) string {
	top, _, _ := strings.Cut(name, "/")
	return top
}
