package firewall

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// oneByOne hides the backend's batches: Apply then makes each change with
// Add and Delete, one iptables call per write.
type oneByOne struct{ forward.Backend }

// newBatchTest is newTest with iptables-restore.
func newBatchTest(t *testing.T) (*Firewall, *fakeIPT) {
	t.Helper()
	f, fake := newTest(t)
	f.t4.restore = fake
	return f, fake
}

// reconcile lists b and applies the plan that makes desired true, pruning
// the rest, as portfwd apply does on the router.
func reconcile(t *testing.T, b forward.Backend, desired []forward.Mapping) forward.Result {
	t.Helper()
	observed, err := b.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	plan := forward.Diff(desired, observed, forward.DiffOptions{Config: "t", Rules: []string{"mc"}, Prune: true, AnyHost: true})
	return forward.Apply(context.Background(), b, plan, nil)
}

// batchPasses are passes of a reconcile: 20 new mappings to two hosts,
// some with hairpin, one to a routed host; then some replaced (another
// internal port, hairpin switched), some removed, some new; then none.
func batchPasses() [][]forward.Mapping {
	var first, second []forward.Mapping
	for i := range 20 {
		m := mc(uint16(30000+i), []string{"192.168.77.10", "192.168.77.11", "10.9.0.5"}[i%3])
		m.Description = forward.Tag("t", fmt.Sprintf("r%d", i))
		m.Hairpin = i%4 == 0
		first = append(first, m)
		switch {
		case i%5 == 0:
			m.InternalPort++
		case i%4 == 0:
			m.Hairpin = false
		case i%4 == 1:
			m.Hairpin = true
		case i%3 == 2:
			continue // removed
		}
		second = append(second, m)
	}
	second = append(second, mc(31000, "192.168.77.12"))
	return [][]forward.Mapping{first, second, nil}
}

// A batch writes exactly the rules Add and Delete write, in the same
// order, with one iptables-restore per pass and no iptables call.
func TestBatchWritesWhatAddWrites(t *testing.T) {
	batched, bfake := newBatchTest(t)
	each, efake := newBatchTest(t)
	base := bfake.snapshot()
	for i, desired := range batchPasses() {
		writes := bfake.writes
		if res := reconcile(t, batched, desired); res.Failed() != 0 || res.Made() == 0 {
			t.Fatalf("pass %d batched: %d failed, %d made", i, res.Failed(), res.Made())
		}
		if res := reconcile(t, oneByOne{each}, desired); res.Failed() != 0 {
			t.Fatalf("pass %d one by one: %d failed", i, res.Failed())
		}
		if got, want := bfake.snapshot(), efake.snapshot(); got != want {
			t.Errorf("pass %d: the batch wrote\n%s\nAdd and Delete wrote\n%s", i, got, want)
		}
		if bfake.restores != i+1 || bfake.writes != writes || efake.restores != 0 {
			t.Errorf("pass %d: %d restores and %d iptables writes batched, %d restores one by one; want one restore, no write, none",
				i, bfake.restores, bfake.writes-writes, efake.restores)
		}
	}
	if err := batched.Teardown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := bfake.snapshot(); got != base {
		t.Errorf("after the last pass and Teardown:\n%s\nwant the tables as before:\n%s", got, base)
	}
}

// After a batch the view is the batch's: an Add of what the batch wrote
// reads nothing and writes nothing.
func TestBatchKeepsViewCurrent(t *testing.T) {
	f, fake := newBatchTest(t)
	desired := batchPasses()[0]
	if res := reconcile(t, f, desired); res.Failed() != 0 {
		t.Fatal(res.Outcomes)
	}
	reads, writes := fake.reads, fake.writes
	for _, m := range desired {
		if _, err := f.Add(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if fake.reads != reads || fake.writes != writes {
		t.Errorf("Add of what the batch wrote: %d reads, %d writes; want none", fake.reads-reads, fake.writes-writes)
	}
	ms, err := f.List(context.Background())
	if err != nil || len(ms) != len(desired) {
		t.Errorf("List after the batch: %d mappings, %v; want %d", len(ms), err, len(desired))
	}
}

// A failing transaction: the changes are made again one by one, so the
// one bad rule fails with its own error and the others are made, whether
// the restore failed in its first table or after committing it.
func TestBatchFailingTransaction(t *testing.T) {
	for _, badTable := range []string{"filter", "nat"} {
		t.Run(badTable, func(t *testing.T) {
			f, fake := newBatchTest(t)
			fake.reject = func(table, chain string, spec []string) error {
				if table == badTable && strings.Contains(strings.Join(spec, " "), "portfwd:bad") {
					return errors.New("iptables: Invalid argument")
				}
				return nil
			}
			bad := mc(30001, "192.168.77.10")
			bad.Description = (forward.LegacyTagPrefix + "bad")
			desired := []forward.Mapping{mc(30000, "192.168.77.10"), bad, mc(30002, "192.168.77.11")}
			res := reconcile(t, f, desired)
			for i, o := range res.Outcomes {
				if (i == 1) != (o.Err != nil) || i == 1 && !strings.Contains(o.Err.Error(), "adding mapping tcp/30001") {
					t.Errorf("outcome %d (%v): %v; want only tcp/30001 to fail, saying so", i, o.Change.Key, o.Err)
				}
			}
			if fake.restores != 1 {
				t.Errorf("%d restores, want 1", fake.restores)
			}
			ms, err := f.List(context.Background())
			if err != nil || len(ms) != 2 || ms[0].ExternalPort != 30000 || ms[1].ExternalPort != 30002 || !ms[0].Enabled || !ms[1].Enabled {
				t.Errorf("List after the failed transaction: %+v, %v; want tcp/30000 and tcp/30002, enabled", ms, err)
			}
			w := f.Warnings()
			if len(w) != 1 || !strings.Contains(w[0], "iptables-restore failed") || len(f.Warnings()) != 0 {
				t.Errorf("warnings %q; want one about the restore, told once", w)
			}
		})
	}
}

// A change that fails while staging takes back what it staged (here the
// hooks and rules written before its hairpin needed the LAN addresses):
// the others are committed without any of it.
func TestBatchStagingFailureStagesNothing(t *testing.T) {
	f, fake := newBatchTest(t)
	fake.mustAppend(t, "nat", "PREROUTING", "-i", "wan0", "-p", "tcp", "-m", "tcp", "--dport", "2222",
		"-j", "DNAT", "--to-destination", "192.168.77.11:22")
	if _, err := f.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.sys.interfaces = func() ([]netIface, error) { return nil, errors.New("netlink: no") }
	broken := mc(30000, "192.168.77.10")
	broken.Hairpin = true
	conflict := mc(2222, "192.168.77.10")
	plan := forward.Plan{Changes: []forward.Change{
		{Action: forward.Create, Key: broken.Key, After: &broken},
		{Action: forward.Create, Key: conflict.Key, After: &conflict},
		{Action: forward.Create, Key: forward.Key{Protocol: forward.TCP, ExternalPort: 30001}, After: ptr(mc(30001, "192.168.77.11"))},
	}}
	res := forward.Apply(context.Background(), f, plan, nil)
	var ce *forward.ConflictError
	if res.Outcomes[0].Err == nil || !errors.As(res.Outcomes[1].Err, &ce) || res.Outcomes[2].Err != nil {
		t.Fatalf("outcomes %v, %v, %v; want the hairpin one and the conflict to fail", res.Outcomes[0].Err, res.Outcomes[1].Err, res.Outcomes[2].Err)
	}
	script := fake.scripts[len(fake.scripts)-1]
	if strings.Contains(script, "30000") || strings.Count(script, "-N PORTFWD-FORWARD") != 1 || strings.Count(script, "\n-A ") != 2 {
		t.Errorf("script:\n%s\nwant tcp/30001's two rules and the hooks once, nothing of tcp/30000", script)
	}
	if snap := fake.snapshot(); strings.Contains(snap, "30000") || !strings.Contains(snap, "30001") {
		t.Errorf("tables:\n%s", snap)
	}
}

func ptr[T any](v T) *T { return &v }

// Without an iptables-restore there is no batch: Apply makes each change.
func TestNoRestoreNoBatch(t *testing.T) {
	f, fake := newTest(t)
	if _, err := f.Begin(context.Background()); err == nil {
		t.Error("Begin without iptables-restore: no error")
	}
	if res := reconcile(t, f, []forward.Mapping{mc(30000, "192.168.77.10")}); res.Failed() != 0 || fake.restores != 0 {
		t.Errorf("apply: %d failed, %d restores", res.Failed(), fake.restores)
	}
}

func TestRestoreWord(t *testing.T) {
	for _, w := range []string{"portfwd:mc", "192.168.77.10:25565", "", "a b", `the owner's "own" \ forward`, "tab\there", `\`, `"`} {
		line := "-A PORTFWD-FORWARD " + restoreWord(w) + " -j ACCEPT"
		got, err := splitArgs(line)
		if err != nil || len(got) != 5 || got[2] != w {
			t.Errorf("restoreWord(%q) = %s, read back as %q, %v", w, restoreWord(w), got, err)
		}
	}
	if got := restoreWord("portfwd:mc"); got != "portfwd:mc" {
		t.Errorf("a plain word is quoted: %s", got)
	}
	s := newScript(&view{chains: map[string][]rule{"filter/" + chainForward: nil}})
	if err := s.append("filter", chainForward, []string{"-m", "comment", "--comment", "two\nlines"}); err == nil || s.writes() != 0 {
		t.Errorf("a word with a line break: %v, %d staged", err, s.writes())
	}
}

func TestRestoreBinary(t *testing.T) {
	for _, tc := range []struct {
		real    string // what /usr/sbin/iptables is
		sibling bool   // whether /usr/sbin/iptables-restore is there
		want    string
	}{
		{"/usr/sbin/xtables-nft-multi", true, "/usr/sbin/xtables-nft-multi"},
		{"/usr/sbin/xtables-legacy-multi", false, "/usr/sbin/xtables-legacy-multi"},
		{"/sbin/xtables-multi", false, "/sbin/xtables-multi"},
		{"/usr/sbin/iptables", true, "/usr/sbin/iptables-restore"}, // a wrapper, say
		{"/usr/sbin/iptables", false, ""},
		{"/bin/busybox", false, ""},
	} {
		sys := testSystem()
		sys.lookPath = func(name string) (string, error) {
			switch {
			case name == "iptables":
				return "/usr/sbin/iptables", nil
			case name == "/usr/sbin/iptables-restore" && tc.sibling:
				return name, nil
			}
			return "", errors.New("not found")
		}
		sys.realPath = func(string) (string, error) { return tc.real, nil }
		if got := restoreBinary(sys, "iptables"); got != tc.want {
			t.Errorf("iptables running %s, sibling %v: restoreBinary = %q, want %q", tc.real, tc.sibling, got, tc.want)
		}
	}
}

// restoreCmd quotes a failing iptables-restore's output, escaped and
// bounded, and a cancelled context stops it.
func TestRestoreCmd(t *testing.T) {
	dir := t.TempDir()
	fail := filepath.Join(dir, "fail")
	script := "#!/bin/sh\ncat >/dev/null\nprintf 'iptables-restore: line 3 failed\\033[2J\\n' >&2\nhead -c 9000 /dev/zero | tr '\\0' x >&2\nexit 1\n"
	if err := os.WriteFile(fail, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	err := restoreCmd{path: fail}.restore(context.Background(), "*filter\nCOMMIT\n")
	if err == nil || !strings.Contains(err.Error(), `line 3 failed\x1b[2J\n`) || len(err.Error()) > restoreOutputLimit+200 || !strings.HasSuffix(err.Error(), "…") {
		t.Errorf("error = %.300q (%d bytes); want the output escaped, cut at %d bytes", err, len(err.Error()), restoreOutputLimit)
	}
	hang := filepath.Join(dir, "hang")
	if err := os.WriteFile(hang, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- restoreCmd{path: hang}.restore(ctx, "") }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled restore: %v", err)
		}
	case <-time.After(time.Minute): // a hang detector, not a timing
		t.Fatal("a cancelled iptables-restore did not return")
	}
}
