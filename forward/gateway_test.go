package forward_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

var (
	lanSelf  = netip.MustParseAddr("192.168.1.10")
	lanOther = netip.MustParseAddr("192.168.1.11")
)

// fakeBackend is a Memory gateway whose Properties say what a test needs.
type fakeBackend struct {
	*forwardtest.Memory
	props    forward.Properties
	warnings []string
}

func (b *fakeBackend) Properties() forward.Properties { return b.props }

func (b *fakeBackend) Warnings() []string {
	w := b.warnings
	b.warnings = nil
	return w
}

// protocol is an opener for a fake protocol: answering or silent, and
// counting its opens by trial.
type protocol struct {
	props          forward.Properties
	silent         bool
	delay          time.Duration // before it answers
	trials, reales atomic.Int32
}

func (p *protocol) opener(detect bool) forward.Opener {
	return forward.Opener{Name: p.props.Name, Detect: detect, Open: func(ctx context.Context, trial bool) (forward.Backend, error) {
		if trial {
			p.trials.Add(1)
		} else {
			p.reales.Add(1)
		}
		if p.silent {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(p.delay):
		}
		return &fakeBackend{Memory: forwardtest.NewMemory(lanSelf), props: p.props}, nil
	}}
}

func lister() *protocol {
	return &protocol{props: forward.Properties{Name: "upnp", Gateway: "u", ThirdParty: forward.ThirdPartyIfAllowed}}
}
func successor() *protocol {
	return &protocol{props: forward.Properties{Name: "pcp", Gateway: "p", ListsFromState: true, ThirdParty: forward.ThirdPartyYes}}
}
func elder() *protocol {
	return &protocol{props: forward.Properties{Name: "natpmp", Gateway: "n", ListsFromState: true, ThirdParty: forward.ThirdPartyNo}}
}

func openers(ps ...*protocol) []forward.Opener {
	var out []forward.Opener
	for _, p := range ps {
		out = append(out, p.opener(true))
	}
	return out
}

var forOther = []forward.Rule{{Name: "nas", InternalAddr: lanOther}}

func TestDetectChoosesByProperties(t *testing.T) {
	for _, tt := range []struct {
		name   string
		answer []bool // lister, successor, elder
		rules  []forward.Rule
		want   string
	}{
		{"all answer: the one that lists", []bool{true, true, true}, nil, "upnp"},
		{"no lister: the first", []bool{false, true, true}, nil, "pcp"},
		{"only the elder", []bool{false, false, true}, nil, "natpmp"},
		{"another host: made for it", []bool{true, true, true}, forOther, "pcp"},
		{"another host: if allowed", []bool{true, false, true}, forOther, "upnp"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ps := []*protocol{lister(), successor(), elder()}
			for i, a := range tt.answer {
				ps[i].silent = !a
			}
			g, err := forward.Detect(context.Background(), openers(ps...), tt.rules, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := g.Backend.Properties().Name; got != tt.want || g.Detection == nil || g.Detection.Why == "" {
				t.Errorf("chose %s (%+v), want %s", got, g.Detection, tt.want)
			}
			if g.Self != lanSelf {
				t.Errorf("Self = %v, want the backend's LocalAddr %v", g.Self, lanSelf)
			}
		})
	}
}

func TestDetectReopensRecordsForReal(t *testing.T) {
	up, pcp := lister(), successor()
	up.silent = true
	if _, err := forward.Detect(context.Background(), openers(up, pcp), nil, nil); err != nil {
		t.Fatal(err)
	}
	if pcp.trials.Load() == 0 || pcp.reales.Load() != 1 {
		t.Errorf("pcp opened %d times on trial, %d for real; want the chosen one opened again for real, once", pcp.trials.Load(), pcp.reales.Load())
	}
	up, pcp = lister(), successor()
	if _, err := forward.Detect(context.Background(), openers(up, pcp), nil, nil); err != nil {
		t.Fatal(err)
	}
	if up.reales.Load() != 0 || pcp.reales.Load() != 0 {
		t.Errorf("a backend that keeps no records was opened again (%d), or one not chosen (%d)", up.reales.Load(), pcp.reales.Load())
	}
}

func TestDetectRefusesOtherHostWithoutAWay(t *testing.T) {
	up, pcp, nat := lister(), successor(), elder()
	up.silent, pcp.silent = true, true
	_, err := forward.Detect(context.Background(), openers(up, pcp, nat), forOther, nil)
	if err == nil || !strings.Contains(err.Error(), `rule "nas" forwards to another host`) || !strings.Contains(err.Error(), "natpmp") {
		t.Errorf("err = %v; want the rule named and what answered", err)
	}
}

func TestDetectNothingAnswers(t *testing.T) {
	ps := []*protocol{lister(), successor()}
	for _, p := range ps {
		p.silent = true
	}
	start := time.Now()
	_, err := forward.Detect(context.Background(), openers(ps...), nil, nil)
	if !errors.Is(err, forward.ErrNoGateway) || !strings.Contains(err.Error(), "answered none of upnp, pcp") {
		t.Errorf("err = %v; want ErrNoGateway naming what was asked", err)
	}
	if took := time.Since(start); took > forward.DetectBudget+forward.DetectLongBudget+time.Second {
		t.Errorf("gave up after %v", took)
	}
}

// TestDetectNothingAnswersSaysTheRealWait: the error says how long the
// user waited — here the openers' own 300 ms after the first pass, not the
// 2 s budget of the second pass — what was asked once, no advice about
// gateway.address (the caller knows whether it was given), and no
// trailing "no gateway found".
func TestDetectNothingAnswersSaysTheRealWait(t *testing.T) {
	wait := 300 * time.Millisecond
	silent := func(name string) forward.Opener {
		return forward.Opener{Name: name, Detect: true, Wait: wait, Open: func(ctx context.Context, _ bool) (forward.Backend, error) {
			select {
			case <-time.After(wait):
				return nil, forward.NoGateway(errors.New(name + " did not answer"))
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}}
	}
	start := time.Now()
	_, err := forward.Detect(context.Background(), []forward.Opener{silent("upnp"), silent("pcp")}, nil, nil)
	took := time.Since(start)
	if !errors.Is(err, forward.ErrNoGateway) {
		t.Fatalf("err = %v; want ErrNoGateway", err)
	}
	msg := err.Error()
	m := regexp.MustCompile(`waited ([0-9.]+m?s)\)`).FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("%q does not say how long it waited", msg)
	}
	said, _ := time.ParseDuration(m[1])
	if said > took+50*time.Millisecond || said < forward.DetectBudget+wait-50*time.Millisecond {
		t.Errorf("says it waited %v; it waited %v", said, took)
	}
	if strings.Count(msg, "upnp, pcp") != 1 || strings.Contains(msg, "gateway.address") || strings.HasSuffix(msg, forward.ErrNoGateway.Error()) {
		t.Errorf("%q: want what was asked said once, no gateway.address, no trailing %q", msg, forward.ErrNoGateway)
	}
}

// TestDetectSameFailureEverywhere: when every protocol failed the same
// way at once (no default route), that is the error, not a wait.
func TestDetectSameFailureEverywhere(t *testing.T) {
	fail := func(name string) forward.Opener {
		return forward.Opener{Name: name, Detect: true, Open: func(context.Context, bool) (forward.Backend, error) {
			return nil, forward.NoGateway(errors.New("this host has no default gateway to ask (no route)"))
		}}
	}
	_, err := forward.Detect(context.Background(), []forward.Opener{fail("upnp"), fail("pcp")}, nil, nil)
	if !errors.Is(err, forward.ErrNoGateway) || !strings.Contains(fmt.Sprint(err), "no default gateway to ask (no route)") || strings.Contains(fmt.Sprint(err), "waited") {
		t.Errorf("err = %v; want the one failure, as ErrNoGateway", err)
	}
}

func TestDetectFirstAnswerEndsTheWait(t *testing.T) {
	up, slow := lister(), successor()
	slow.silent = true
	start := time.Now()
	if _, err := forward.Detect(context.Background(), openers(up, slow), nil, nil); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > forward.DetectBudget {
		t.Errorf("the preferred protocol answered at once, yet detection took %v", took)
	}
}

// TestDetectOtherHostWaitsForTheOneMadeForIt: with a rule for another
// host, the first opener answering does not end the wait, since a later
// one made for third parties (PCP) is better.
func TestDetectOtherHostWaitsForTheOneMadeForIt(t *testing.T) {
	up, pcp := lister(), successor()
	pcp.delay = forward.DetectWindow / 4
	g, err := forward.Detect(context.Background(), openers(up, pcp), forOther, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := g.Backend.Properties().Name; got != "pcp" {
		t.Errorf("chose %s; want pcp, made for rules to another host", got)
	}
}

func TestDetectInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := forward.Detect(ctx, openers(lister()), nil, nil)
	if !errors.Is(err, context.Canceled) || errors.Is(err, forward.ErrNoGateway) {
		t.Errorf("err = %v; want the interruption, not 'no gateway'", err)
	}
}

func TestOpenByName(t *testing.T) {
	up, ipt := lister(), &protocol{props: forward.Properties{Name: "iptables", Gateway: "i", Local: true}}
	os := []forward.Opener{up.opener(true), ipt.opener(false)}
	g, err := forward.Open(context.Background(), os, "iptables", nil, nil)
	if err != nil || g.Backend.Properties().Name != "iptables" || g.Detection != nil || ipt.reales.Load() != 1 {
		t.Errorf("Open iptables = %v, %v", g, err)
	}
	if _, err := forward.Open(context.Background(), os, "carrier-pigeon", nil, nil); err == nil ||
		!strings.Contains(err.Error(), `"carrier-pigeon" is not available`) || !strings.Contains(err.Error(), "use auto, upnp or iptables") {
		t.Errorf("unknown backend: %v", err)
	}
	g, err = forward.Open(context.Background(), os, forward.Auto, nil, nil)
	if err != nil || g.Backend.Properties().Name != "upnp" || ipt.trials.Load() != 0 {
		t.Errorf("auto chose %v (%v); iptables tried %d times, want never", g, err, ipt.trials.Load())
	}
}

func TestAsFindsCapabilitiesThroughDecorators(t *testing.T) {
	b := &fakeBackend{Memory: forwardtest.NewMemory(lanSelf), warnings: []string{"w"}}
	ro := forward.ReadOnly(b)
	if got := forward.SelfOf(ro); got != lanSelf {
		t.Errorf("SelfOf through ReadOnly = %v", got)
	}
	if w := forward.WarningsOf(ro); len(w) != 1 || len(forward.WarningsOf(ro)) != 0 {
		t.Errorf("warnings = %v, then not drained", w)
	}
	if _, ok := forward.As[forward.TearDowner](ro); ok {
		t.Error("As found a capability the backend lacks")
	}
	// Find only reads: ReadOnly passes it through, to the Loop's check too.
	lookup := &finding{Memory: b.Memory}
	if f, ok := forward.As[forward.Finder](forward.ReadOnly(lookup)); !ok || f != forward.Finder(lookup) {
		t.Errorf("As[Finder] through ReadOnly = %v, %v; want the backend's own", f, ok)
	}
	if _, ok := forward.As[forward.Finder](ro); ok {
		t.Error("As found a Finder the backend lacks")
	}
	m := forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: 80}, InternalHost: lanSelf, InternalPort: 80}
	if _, err := ro.Add(context.Background(), m); !errors.Is(err, forward.ErrReadOnly) {
		t.Errorf("Add on ReadOnly: %v", err)
	}
	if err := ro.Delete(context.Background(), m); !errors.Is(err, forward.ErrReadOnly) {
		t.Errorf("Delete on ReadOnly: %v", err)
	}
	if adds, dels := b.Calls(); adds+dels != 0 {
		t.Errorf("ReadOnly let %d adds and %d deletes through", adds, dels)
	}
}

// memo is a Memory in memory that counts what detection asks of it. A
// careless one recalls its one choice whatever the kind of rules asked.
type memo struct {
	choices          map[bool]forward.Choice
	careless         bool
	recalls, forgets int
}

func (m *memo) Recall(other bool) (forward.Choice, bool) {
	m.recalls++
	if m.careless {
		other = !other
		if c, ok := m.choices[other]; ok {
			return c, true
		}
		other = !other
	}
	c, ok := m.choices[other]
	return c, ok
}

func (m *memo) Remember(c forward.Choice) {
	if m.choices == nil {
		m.choices = map[bool]forward.Choice{}
	}
	m.choices[c.OtherHost] = c
}

func (m *memo) Forget(other bool) { m.forgets++; delete(m.choices, other) }

// remembering is a memo holding one choice of backend, made at.
func remembering(backend string, other bool, at time.Time) *memo {
	return &memo{choices: map[bool]forward.Choice{other: {Backend: backend, Answered: []string{backend}, OtherHost: other, At: at}}}
}

func TestDetectRemembersAndOpensTheChoiceAlone(t *testing.T) {
	up, pcp, nat := lister(), successor(), elder()
	up.silent = true
	mem := &memo{}
	g, err := forward.Detect(context.Background(), openers(up, pcp, nat), nil, mem)
	if err != nil || g.Backend.Properties().Name != "pcp" || g.Detection.Remembered {
		t.Fatalf("first run: %v, %+v", err, g)
	}
	c := mem.choices[false]
	if c.Backend != "pcp" || !slices.Equal(c.Answered, []string{"pcp", "natpmp"}) || c.OtherHost || time.Since(c.At) > time.Minute {
		t.Errorf("remembered %+v", c)
	}
	trials := up.trials.Load() + pcp.trials.Load() + nat.trials.Load()
	g, err = forward.Detect(context.Background(), openers(up, pcp, nat), nil, mem)
	if err != nil || g.Backend.Properties().Name != "pcp" {
		t.Fatalf("second run: %v, %+v", err, g)
	}
	if n := up.trials.Load() + pcp.trials.Load() + nat.trials.Load(); n != trials || pcp.reales.Load() != 2 {
		t.Errorf("second run asked %d protocols on trial and opened pcp %d times for real; want none, and pcp opened once more", n-trials, pcp.reales.Load())
	}
	d := g.Detection
	if !d.Remembered || !slices.Equal(d.Answered, []string{"pcp"}) || !strings.Contains(d.Why, "when pcp, natpmp answered") || !strings.Contains(d.Why, "--rediscover") {
		t.Errorf("detection %+v; want the remembered choice said so", d)
	}
}

func TestDetectFallsBackWhenTheChoiceIsSilent(t *testing.T) {
	up, pcp, nat := lister(), successor(), elder()
	up.silent, pcp.silent = true, true // the router now speaks NAT-PMP alone
	mem := remembering("pcp", false, time.Now())
	g, err := forward.Detect(context.Background(), openers(up, pcp, nat), nil, mem)
	if err != nil || g.Backend.Properties().Name != "natpmp" || g.Detection.Remembered {
		t.Fatalf("%v, %+v; want natpmp from a full detection", err, g)
	}
	if pcp.reales.Load() != 1 || up.trials.Load() != 1 || mem.forgets != 1 {
		t.Errorf("pcp opened alone %d times, UPnP asked %d times, memory forgotten %d times; want 1 each", pcp.reales.Load(), up.trials.Load(), mem.forgets)
	}
	if c := mem.choices[false]; c.Backend != "natpmp" {
		t.Errorf("memory after the fallback: %+v; want natpmp", c)
	}
}

func TestDetectDoesNotUseAChoiceThatDoesNotFit(t *testing.T) {
	now := time.Now()
	for _, tt := range []struct {
		name  string
		mem   *memo
		rules []forward.Rule
		want  string
	}{
		{"a day old", remembering("natpmp", false, now.Add(-forward.DetectMemoryAge-time.Minute)), nil, "pcp"},
		{"from the future", remembering("natpmp", false, now.Add(time.Hour)), nil, "pcp"},
		{"a backend not detected", remembering("iptables", false, now), nil, "pcp"},
		{"a backend unknown", remembering("carrier-pigeon", false, now), nil, "pcp"},
		// With UPnP on, it is chosen for rules of this host; but PCP is made
		// for rules that forward to another host.
		{"made for rules of this host only", &memo{careless: true, choices: remembering("upnp", false, now).choices}, forOther, "pcp"},
		{"for another host, a backend that cannot", remembering("natpmp", true, now), forOther, "pcp"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up, pcp, nat, ipt := lister(), successor(), elder(), &protocol{props: forward.Properties{Name: "iptables", Local: true}}
			up.silent = tt.mem.choices[false].Backend != "upnp"
			os := append(openers(up, pcp, nat), ipt.opener(false))
			g, err := forward.Detect(context.Background(), os, tt.rules, tt.mem)
			if err != nil || g.Backend.Properties().Name != tt.want || g.Detection.Remembered {
				t.Fatalf("%v, %+v; want %s from a full detection", err, g, tt.want)
			}
			if up.trials.Load() != 1 || ipt.reales.Load()+ipt.trials.Load() != 0 {
				t.Errorf("UPnP asked %d times, iptables opened %d times; want a full detection, iptables never", up.trials.Load(), ipt.reales.Load()+ipt.trials.Load())
			}
			if c := tt.mem.choices[tt.rules != nil]; c.Backend != tt.want || time.Since(c.At) > time.Minute {
				t.Errorf("memory after the full detection: %+v; want %s, now", c, tt.want)
			}
		})
	}
}

func TestDetectRecallInterrupted(t *testing.T) {
	for _, silent := range []bool{false, true} {
		pcp := successor()
		pcp.silent = silent
		mem := remembering("pcp", false, time.Now())
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := forward.Detect(ctx, openers(lister(), pcp), nil, mem)
		if !errors.Is(err, context.Canceled) || mem.forgets != 0 || mem.choices[false].Backend != "pcp" {
			t.Errorf("pcp silent %v: err = %v, memory forgotten %d times; want the interruption, and the memory kept", silent, err, mem.forgets)
		}
	}
}

// TestDetectSaysWhatItAsked: the Detection names every protocol asked and
// how the wait ended, so that a shorter Answered list on the next run (the
// first choice answered sooner) or the remembered protocol alone does not
// read as the router speaking less.
func TestDetectSaysWhatItAsked(t *testing.T) {
	up, pcp, nat := lister(), successor(), elder()
	g, err := forward.Detect(context.Background(), openers(up, pcp, nat), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := g.Detection
	if !slices.Equal(d.Asked, []string{"upnp", "pcp", "natpmp"}) || !d.FirstEnded ||
		!strings.HasPrefix(d.Asking(), "asked upnp, pcp, natpmp; answered: upnp") || !strings.Contains(d.Asking(), "the others were not waited for") {
		t.Errorf("the first choice answered: %+v, %q", d, d.Asking())
	}

	up.silent = true
	mem := &memo{}
	if g, err = forward.Detect(context.Background(), openers(up, pcp, nat), nil, mem); err != nil {
		t.Fatal(err)
	}
	d = g.Detection
	if d.FirstEnded || !slices.Equal(d.Asked, []string{"upnp", "pcp", "natpmp"}) ||
		d.Asking() != "asked upnp, pcp, natpmp; answered: pcp, natpmp (the others had up to "+forward.DetectWindow.String()+" after the first answer)" {
		t.Errorf("the first choice silent: %+v, %q", d, d.Asking())
	}

	if g, err = forward.Detect(context.Background(), openers(up, pcp, nat), nil, mem); err != nil {
		t.Fatal(err)
	}
	if d = g.Detection; !d.Remembered || !slices.Equal(d.Asked, []string{"pcp"}) || d.Asking() != "asked pcp alone (remembered)" {
		t.Errorf("remembered: %+v, %q", d, d.Asking())
	}
}
