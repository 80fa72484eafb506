package firewall

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/internal/lab"
)

// TestLabFirewallBatch: on the router's real iptables and ip6tables, in
// both flavours, passes of 200 forwards and 40 pinholes written with one
// iptables-restore and one ip6tables-restore each leave iptables-save and
// ip6tables-save byte for byte as Add and Delete leave them with an
// iptables call per rule; the last pass and Teardown give back the
// rulesets as they were; and a transaction the kernel refuses still makes
// every good rule.
func TestLabFirewallBatch(t *testing.T) {
	if c, ok := lab.ChildOf(t); ok {
		batchChild(t, c)
		return
	}
	inEachFlavour(t, "the batches and Teardown")
}

// countingRestorer counts the iptables-restore runs of a Firewall.
type countingRestorer struct {
	restorer
	runs int
}

func (c *countingRestorer) restore(ctx context.Context, script string) error {
	c.runs++
	return c.restorer.restore(ctx, script)
}

// batchChild runs in the router namespace with c.Phase's flavour.
func batchChild(t *testing.T, c *lab.Child) {
	f, err := New(Options{WANInterface: lab.RouterWANIface})
	if err != nil {
		t.Fatal(err)
	}
	if f.Flavour() != c.Phase || f.t4.restore == nil || f.t6 == nil || f.t6.restore == nil {
		t.Fatalf("Flavour %q, restore %v, IPv6 side %v; want %q and an iptables-restore and ip6tables-restore", f.Flavour(), f.t4.restore, f.t6, c.Phase)
	}
	counter, counter6 := &countingRestorer{restorer: f.t4.restore}, &countingRestorer{restorer: f.t6.restore}
	f.t4.restore, f.t6.restore = counter, counter6
	save := flavourSave(t, c.Phase)
	pristine := save()
	passes := labPasses(c)
	oneByOneSaves := runPasses(t, oneByOne{f}, f, passes, save)
	if counter.runs+counter6.runs != 0 {
		t.Fatalf("one by one: %d iptables-restore and %d ip6tables-restore runs", counter.runs, counter6.runs)
	}
	if got := save(); got != pristine {
		t.Fatalf("after the passes one by one and Teardown:\n%s\nwant:\n%s", got, pristine)
	}
	batchSaves := runPasses(t, f, f, passes, save)
	for i := range passes {
		if batchSaves[i] != oneByOneSaves[i] {
			t.Errorf("pass %d: iptables-save after the batch:\n%s\nafter Add and Delete:\n%s", i, batchSaves[i], oneByOneSaves[i])
		}
	}
	if counter.runs != len(passes) || counter6.runs != len(passes) {
		t.Errorf("%d passes made %d iptables-restore and %d ip6tables-restore runs, want one each", len(passes), counter.runs, counter6.runs)
	}
	if got := save(); got != pristine {
		t.Errorf("after the batches and Teardown:\n%s\nwant:\n%s", got, pristine)
	}
	refusedTransaction(t, c, f, save)
	if got := save(); got != pristine {
		t.Errorf("after the refused transaction and Teardown:\n%s\nwant:\n%s", got, pristine)
	}
}

// labPasses: 200 new mappings to the two LAN hosts, every tenth with
// hairpin, and 40 pinholes; then 50 of them replaced (another internal
// port, hairpin switched, another IPv6 host), 25 removed and 10 new; then
// none (portfwd down).
func labPasses(c *lab.Child) [][]forward.Mapping {
	first, second := labPinholes(c)
	for i := range 200 {
		m := mc(uint16(30000+i), []netip.Addr{c.LANHost, c.LANHost2}[i%2].String())
		m.Description = forward.Tag("t", fmt.Sprintf("r%d", i))
		m.InternalPort = m.ExternalPort
		m.Hairpin = i%10 == 0
		first = append(first, m)
		switch {
		case i%8 == 0:
			continue // removed
		case i%4 == 1:
			m.InternalPort++
		case i%10 == 0, i%10 == 3:
			m.Hairpin = !m.Hairpin
		}
		second = append(second, m)
	}
	for i := range 10 {
		second = append(second, mc(uint16(31000+i), c.LANHost.String()))
	}
	return [][]forward.Mapping{first, second, nil}
}

// labPinholes are 40 IPv6 pinholes to the LAN host, and the same after 10
// went to another address and 10 were removed.
func labPinholes(c *lab.Child) (first, second []forward.Mapping) {
	for i := range 40 {
		m := mc(uint16(30000+i*5), c.LANHost6.String())
		m.Family, m.InternalPort = forward.IPv6, m.ExternalPort
		m.Description = forward.Tag("t", fmt.Sprintf("r%d", i*5))
		first = append(first, m)
		switch i % 4 {
		case 0:
			m.InternalHost = c.LANHost6.Next()
		case 1:
			continue // removed
		}
		second = append(second, m)
	}
	return first, second
}

// runPasses reconciles b with each pass and saves the tables after each,
// then tears f's chains down.
func runPasses(t *testing.T, b forward.Backend, f *Firewall, passes [][]forward.Mapping, save func() string) []string {
	t.Helper()
	var saves []string
	for i, desired := range passes {
		if res := reconcile(t, b, desired); res.Failed() != 0 || res.Made() == 0 {
			t.Fatalf("pass %d: %d of %d changes failed: %v", i, res.Failed(), len(res.Outcomes), firstErr(res))
		}
		if res := reconcile(t, b, desired); res.Made() != 0 {
			t.Errorf("pass %d again: %d changes made, want none", i, res.Made())
		}
		saves = append(saves, save())
	}
	if err := f.Teardown(context.Background()); err != nil {
		t.Fatal(err)
	}
	return saves
}

func firstErr(res forward.Result) error {
	for _, o := range res.Outcomes {
		if o.Err != nil {
			return o.Err
		}
	}
	return nil
}

// refusedTransaction: iptables refuses a rule (its protocol in capitals
// names no match module: -m TCP), so the restore fails; the pass goes one
// by one, and only that mapping fails while the others are written.
func refusedTransaction(t *testing.T, c *lab.Child, f *Firewall, save func() string) {
	t.Helper()
	bad := mc(30001, c.LANHost.String())
	bad.Protocol, bad.Description = "TCP", (forward.LegacyTagPrefix + "bad")
	var plan forward.Plan
	for _, m := range []forward.Mapping{mc(30000, c.LANHost.String()), bad, mc(30002, c.LANHost2.String())} {
		plan.Changes = append(plan.Changes, forward.Change{Action: forward.Create, Key: m.Key, After: &m})
	}
	res := forward.Apply(context.Background(), f, plan, nil)
	for i, o := range res.Outcomes {
		if (o.Change.Key == bad.Key) != (o.Err != nil) {
			t.Errorf("outcome %d (%v): %v; want only %v to fail", i, o.Change.Key, o.Err, bad.Key)
		}
	}
	w := f.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "iptables-restore") {
		t.Errorf("warnings %q; want the failed iptables-restore", w)
	}
	t.Logf("the warning: %s", w)
	saved := save()
	if strings.Count(saved, "portfwd:mc") != 4 || strings.Contains(saved, "portfwd:bad") {
		t.Errorf("iptables-save after the refused transaction:\n%s\nwant the two good mappings' rules", saved)
	}
	if res := reconcile(t, f, nil); res.Failed() != 0 {
		t.Fatalf("removing them: %v", firstErr(res))
	}
	if err := f.Teardown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// savedNoise is what iptables-save prints that is no rule: comments with
// the time, counters.
var savedNoise = regexp.MustCompile(`(?m)^#.*\n|\[\d+:\d+\]`)

// flavourSave is iptables-save and ip6tables-save of the flavour's
// tables, noise stripped.
func flavourSave(t *testing.T, flavour string) func() string {
	suffix := map[string]string{"nf_tables": "-nft-save", "legacy": "-legacy-save"}[flavour]
	return func() string {
		t.Helper()
		var all strings.Builder
		for _, cmd := range []string{"iptables" + suffix, "ip6tables" + suffix} {
			out, err := exec.Command(cmd).Output()
			if err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
			all.WriteString(savedNoise.ReplaceAllString(string(out), ""))
		}
		return all.String()
	}
}
