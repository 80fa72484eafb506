package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/internal/lab"
)

// binary is the portfwd executable the lab tests run inside the LAN
// namespace, built on first use (unit and script tests do not need it).
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "portfwd-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "portfwd")
		if out, err := exec.Command("go", "build", "-o", buildPath, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building portfwd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// cli is one portfwd run in a lab namespace.
type cli struct {
	stdout, stderr string
	code           int
}

func portfwd(t *testing.T, l *lab.Lab, args ...string) cli {
	t.Helper()
	return portfwdIn(t, l, lab.LAN, nil, args...)
}

// portfwdIn runs portfwd on lab host h, with env added to the
// environment.
func portfwdIn(t *testing.T, l *lab.Lab, h lab.Host, env []string, args ...string) cli {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := l.Command(h, binary(t), args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	// Each lab is its own network: keep the discovery cache with it, as
	// if every test ran on its own machine.
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(l.Dir, "cache"), "PORTFWD_STATE_DIR="+filepath.Join(l.Dir, "state"))
	cmd.Env = append(cmd.Env, env...)
	err := cmd.Run()
	res := cli{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running portfwd %v: %v", args, err)
	}
	t.Logf("portfwd %s → exit %d\n%s%s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
	return res
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decoding JSON: %v\n%s", err, s)
	}
	return v
}

func writeConfig(t testing.TB, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "portfwd.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fromWAN connects from the internet side to the router's WAN address and
// returns what the LAN host answered.
func fromWAN(l *lab.Lab, network string, port int) (string, error) {
	return l.ExchangeFrom(lab.WAN, network, netip.AddrPortFrom(l.RouterWAN, uint16(port)).String(), "ping")
}

// fromWAN6 connects from the internet side to the LAN host's own IPv6
// address (a pinhole: no NAT) and returns what it answered.
func fromWAN6(l *lab.Lab, port int) (string, error) {
	return l.ExchangeFrom(lab.WAN, "tcp", netip.AddrPortFrom(l.LANHost6, uint16(port)).String(), "ping")
}

// upnpc runs miniupnpc's client in the LAN namespace against the lab's
// router: the "other program" whose mappings portfwd must leave alone.
func upnpc(t *testing.T, l *lab.Lab, args ...string) string {
	t.Helper()
	out, err := l.Command(lab.LAN, "upnpc", append([]string{"-u", l.RootDescURL}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("upnpc %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// recordsFile is the layout of the NAT-PMP/PCP records (state.json), as the
// lab tests read it.
type recordsFile struct {
	FormatVersion int `json:"format_version"`
	Gateways      []struct {
		Protocol string                      `json:"protocol"`
		Entries  []struct{ forward.Mapping } `json:"entries"`
	} `json:"gateways"`
}

// rulesFile is a config of n TCP rules r0… on external ports 30000 and
// up, in a file of t's; head goes before rules: (a gateway: section), and
// each of keys ("family: ipv6") into every rule.
func rulesFile(t testing.TB, n int, head string, keys ...string) string {
	var s strings.Builder
	s.WriteString(head + "rules:\n")
	for i := range n {
		fmt.Fprintf(&s, "  - name: r%d\n    protocol: tcp\n    external_port: %d\n", i, 30000+i)
		for _, k := range keys {
			s.WriteString("    " + k + "\n")
		}
	}
	return writeConfig(t, s.String())
}

// skipOutsideCI skips t for a missing prerequisite (why) on a developer's
// machine, and fails it in CI (CI set, as .ci/run is run there): make test
// installs every program the tests need, so one missing there is a defect,
// never a skip.
func skipOutsideCI(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set: make test installs every prerequisite)", why)
	}
	t.Skip(why)
}
