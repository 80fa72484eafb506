package lab

import (
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestChildResult(t *testing.T) {
	c := &Child{Test: "TestLabFoo", Phase: "after", Host: LAN}
	ran := "=== RUN   TestLabFoo\n    foo_test.go:12: " + c.marker() + "\n"
	for _, tt := range []struct {
		name, out string
		err       error
		want      string // "" for no error
	}{
		{"passed", ran + "--- PASS: TestLabFoo (0.01s)\nPASS\n", nil, ""},
		{"exit status", ran + "--- FAIL: TestLabFoo (0.01s)\nFAIL\n", errors.New("exit status 1"), "failed: exit status 1"},
		{"skipped", ran + "--- SKIP: TestLabFoo (0.00s)\nPASS\n", nil, "did not pass"},
		{"no child part", "=== RUN   TestLabFoo\n--- PASS: TestLabFoo (0.01s)\nPASS\n", nil, "did not run its child part"},
		{"no test", "testing: warning: no tests to run\nPASS\n", nil, "did not run its child part"},
		{"another phase", strings.Replace(ran, `"after"`, `"before"`, 1) + "--- PASS: TestLabFoo (0.01s)\n", nil, "did not run its child part"},
		{"a subtest passed", ran + "    --- PASS: TestLabFoo/sub (0.01s)\n--- SKIP: TestLabFoo (0.01s)\n", nil, "did not pass"},
	} {
		err := childResult(c, tt.out, tt.err)
		if !errMatches(err, tt.want) {
			t.Errorf("%s: childResult = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestChildEnviron(t *testing.T) {
	t.Setenv("PATH", "/usr/bin")
	c := &Child{Test: "TestLabFoo", Phase: "p", Host: Router, Dir: "/d", LANHost: netip.MustParseAddr("192.168.77.10"),
		Env: map[string]string{"FOO": "bar"}}
	env, err := childEnviron(c, []string{"/first", "/second"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v // the last one wins, as in exec.Cmd
	}
	if got["FOO"] != "bar" || got["PATH"] != "/first:/second:/usr/bin" {
		t.Errorf("FOO=%q PATH=%q", got["FOO"], got["PATH"])
	}
	var back Child
	if err := json.Unmarshal([]byte(got[childEnv]), &back); err != nil {
		t.Fatal(err)
	}
	if back.Test != c.Test || back.Phase != c.Phase || back.Host != c.Host || back.Dir != c.Dir ||
		back.LANHost != c.LANHost || back.Env["FOO"] != "bar" {
		t.Errorf("%s carries %+v, want %+v", childEnv, back, c)
	}
}

// TestLabRunChild re-runs itself on the LAN host and on the router: each
// child sees the lab's addresses as its own, its Env and Path, and a Dir
// the phases share across a router reboot.
func TestLabRunChild(t *testing.T) {
	if c, ok := ChildOf(t); ok {
		runChildChild(t, c)
		return
	}
	l := ForTest(t, Options{})
	bin := t.TempDir()
	opts := ChildOptions{Env: map[string]string{binEnv: bin}, Path: []string{bin}}
	l.RunChild(t, LAN, "write", opts)
	if err := l.Reboot(t.Context()); err != nil {
		t.Fatal(err)
	}
	l.RunChild(t, LAN, "read", opts)
	opts.Dir = t.TempDir()
	l.RunChild(t, Router, "router", opts)
}

// binEnv names the directory TestLabRunChild puts first on the child's PATH.
const binEnv = "PORTFWD_LAB_TEST_BIN"

func runChildChild(t *testing.T, c *Child) {
	own := map[Host]netip.Addr{LAN: c.LANHost, Router: c.RouterLAN}[c.Host]
	ln, err := net.Listen("tcp", netip.AddrPortFrom(own, 0).String())
	if err != nil {
		t.Fatalf("listening on %v, an address of the %s host: %v", own, c.Host, err)
	}
	ln.Close()
	if first, _, _ := strings.Cut(os.Getenv("PATH"), ":"); first != c.Env[binEnv] || first != os.Getenv(binEnv) {
		t.Errorf("PATH = %q, Env = %v, $%s = %q; want the same dir first on PATH, in Env and the environment",
			os.Getenv("PATH"), c.Env, binEnv, os.Getenv(binEnv))
	}
	shared := filepath.Join(c.Dir, "shared")
	_, err = os.Stat(shared)
	switch c.Phase {
	case "write":
		err = os.WriteFile(shared, []byte("written before the reboot"), 0o644)
	case "read":
		var b []byte
		if b, err = os.ReadFile(shared); err == nil && string(b) != "written before the reboot" {
			t.Errorf("the file of phase write holds %q", b)
		}
	case "router": // another Dir
		if err == nil {
			t.Error("ChildOptions.Dir was not used")
		}
		err = nil
	}
	if err != nil {
		t.Error(err)
	}
}
