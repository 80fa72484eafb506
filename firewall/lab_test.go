package firewall

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
	"github.com/portfwd/portfwd/internal/lab"
)

// The firewall lab test runs the conformance suite against real iptables,
// in both flavours: the parent builds the lab's iptables variant and
// re-runs itself in the router namespace (lab.RunChild), once per flavour,
// where the child writes the router's own tables. For the legacy flavour,
// an iptables that is iptables-legacy comes first on the child's PATH.

// saves are the commands that print each flavour's tables, IPv4 and IPv6.
var saves = []string{"iptables-nft-save", "iptables-legacy-save", "ip6tables-nft-save", "ip6tables-legacy-save"}

func TestLabFirewall(t *testing.T) {
	if c, ok := lab.ChildOf(t); ok {
		firewallChild(t, c)
		return
	}
	inEachFlavour(t, "the suite and Teardown")
}

// inEachFlavour builds the iptables lab and runs the calling test's child
// on the router once per flavour; afterwards the router's rulesets, IPv4
// and IPv6, must be as before, what the child did (did) notwithstanding.
func inEachFlavour(t *testing.T, did string) {
	l := lab.ForTest(t, lab.Options{Iptables: true, IPv6: true})
	for _, flavour := range []string{"nf_tables", "legacy"} {
		t.Run(flavour, func(t *testing.T) {
			// Reading a legacy table loads it, and it stays listed,
			// empty, after: load them first, so before and after compare.
			for _, cmd := range []string{"iptables-legacy -t filter", "iptables-legacy -t nat", "ip6tables-legacy -t filter"} {
				args := append(strings.Fields(cmd), "-S")
				if out, err := l.Command(lab.Router, args[0], args[1:]...).CombinedOutput(); err != nil {
					t.Fatalf("%s -S: %v: %s", cmd, err, out)
				}
			}
			before := saveAll(t, l)
			var opts lab.ChildOptions
			if flavour == "legacy" {
				opts.Path = []string{legacyPath(t)}
			}
			l.RunChild(t, lab.Router, flavour, opts)
			if after := saveAll(t, l); after != before {
				t.Errorf("the router's ruleset after %s:\n%s\nwant as before:\n%s", did, after, before)
			}
		})
	}
}

// saveAll is both flavours' tables.
func saveAll(t *testing.T, l *lab.Lab) string {
	t.Helper()
	var all strings.Builder
	for _, save := range saves {
		s, err := l.SaveTables(context.Background(), save)
		if err != nil {
			t.Fatal(err)
		}
		all.WriteString(s)
	}
	return all.String()
}

// legacyPath is a directory whose iptables is iptables-legacy, and
// ip6tables ip6tables-legacy.
func legacyPath(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, cmd := range []string{"iptables", "ip6tables"} {
		legacy, err := exec.LookPath(cmd + "-legacy")
		if err != nil {
			t.Fatalf("%s-legacy (package iptables): %v", cmd, err)
		}
		if err := os.Symlink(legacy, filepath.Join(dir, cmd)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// firewallChild is the conformance suite on the router's real iptables of
// the flavour c.Phase names, a fresh backend for each subtest, torn down at
// the end.
func firewallChild(t *testing.T, c *lab.Child) {
	flavour := c.Phase
	var last *Firewall
	forwardtest.Run(t, forwardtest.Harness{
		New: func(t *testing.T) forward.Backend {
			f, err := New(Options{WANInterface: lab.RouterWANIface})
			if err != nil {
				t.Fatal(err)
			}
			if f.Flavour() != flavour {
				t.Fatalf("Flavour = %q, want %q", f.Flavour(), flavour)
			}
			last = f
			return f
		},
		Self: c.LANHost,
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
	hairpin := forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: 40003}, InternalHost: c.LANHost,
		InternalPort: 40003, Description: (forward.LegacyTagPrefix + "conformance"), Enabled: true, Hairpin: true}
	if _, err := last.Add(context.Background(), hairpin); err != nil {
		t.Fatal(err)
	}
	ms, err := last.List(context.Background())
	if i := slices.IndexFunc(ms, func(m forward.Mapping) bool { return m.Key == hairpin.Key }); err != nil || i < 0 || ms[i] != hairpin {
		t.Errorf("List after a hairpin Add = %+v, %v; want %+v among them", ms, err, hairpin)
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
