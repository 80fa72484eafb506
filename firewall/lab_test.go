package firewall

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
	"github.com/portfwd/portfwd/internal/lab"
)

// The firewall lab test runs the conformance suite against real iptables:
// the parent builds the lab's iptables variant and re-runs this binary in
// the router namespace, where the child writes the router's own tables.
const firewallLabEnv = "PORTFWD_FIREWALL_LAB"

func TestFirewallLab(t *testing.T) {
	if os.Getenv(firewallLabEnv) != "" {
		t.Skip("inside the lab child")
	}
	l := lab.ForTest(t, lab.Options{Iptables: true})
	before, err := l.IptablesSave(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cmd := l.Command(lab.Router, os.Args[0], "-test.run=^TestFirewallLabChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), firewallLabEnv+"="+l.LANHost.String())
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil || !strings.Contains(string(out), "--- PASS: TestFirewallLabChild") {
		t.Fatalf("lab child failed: %v", err)
	}
	after, err := l.IptablesSave(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("the router's ruleset after the suite and Teardown:\n%s\nwant as before:\n%s", after, before)
	}
}

// TestFirewallLabChild is the conformance suite on the router's real
// iptables, a fresh backend for each subtest, torn down at the end.
func TestFirewallLabChild(t *testing.T) {
	host := os.Getenv(firewallLabEnv)
	if host == "" {
		t.Skip("run by TestFirewallLab inside the lab")
	}
	var last *Firewall
	forwardtest.Run(t, forwardtest.Harness{
		New: func(t *testing.T) forward.Backend {
			f, err := New(Options{WANInterface: lab.RouterWANIface})
			if err != nil {
				t.Fatal(err)
			}
			last = f
			return f
		},
		Self: netip.MustParseAddr(host),
		Port: 40000,
		AddForeign: func(t *testing.T, m forward.Mapping) {
			spec := []string{"-t", "nat", "-A", "PREROUTING", "-i", lab.RouterWANIface, "-p", string(m.Protocol),
				"--dport", strconv.Itoa(int(m.ExternalPort)), "-m", "comment", "--comment", m.Description,
				"-j", "DNAT", "--to-destination", netip.AddrPortFrom(m.InternalHost, m.InternalPort).String()}
			iptablesCmd(t, spec...)
			spec[2] = "-D"
			t.Cleanup(func() { iptablesCmd(t, spec...) })
		},
	})
	if last == nil {
		t.Fatal("the suite made no backend")
	}
	if err := last.Teardown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func iptablesCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
		t.Fatalf("iptables %s: %v: %s", strings.Join(args, " "), err, out)
	}
}
