package forward_test

import (
	"context"
	"errors"
	"net/netip"
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
			g, err := forward.Detect(context.Background(), openers(ps...), tt.rules)
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
	if _, err := forward.Detect(context.Background(), openers(up, pcp), nil); err != nil {
		t.Fatal(err)
	}
	if pcp.trials.Load() == 0 || pcp.reales.Load() != 1 {
		t.Errorf("pcp opened %d times on trial, %d for real; want the chosen one opened again for real, once", pcp.trials.Load(), pcp.reales.Load())
	}
	up, pcp = lister(), successor()
	if _, err := forward.Detect(context.Background(), openers(up, pcp), nil); err != nil {
		t.Fatal(err)
	}
	if up.reales.Load() != 0 || pcp.reales.Load() != 0 {
		t.Errorf("a backend that keeps no records was opened again (%d), or one not chosen (%d)", up.reales.Load(), pcp.reales.Load())
	}
}

func TestDetectRefusesOtherHostWithoutAWay(t *testing.T) {
	up, pcp, nat := lister(), successor(), elder()
	up.silent, pcp.silent = true, true
	_, err := forward.Detect(context.Background(), openers(up, pcp, nat), forOther)
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
	_, err := forward.Detect(context.Background(), openers(ps...), nil)
	if !errors.Is(err, forward.ErrNoGateway) || !strings.Contains(err.Error(), "answered none of upnp, pcp") {
		t.Errorf("err = %v; want ErrNoGateway naming what was asked", err)
	}
	if took := time.Since(start); took > forward.DetectBudget+forward.DetectLongBudget+time.Second {
		t.Errorf("gave up after %v", took)
	}
}

func TestDetectFirstAnswerEndsTheWait(t *testing.T) {
	up, slow := lister(), successor()
	slow.silent = true
	start := time.Now()
	if _, err := forward.Detect(context.Background(), openers(up, slow), nil); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > forward.DetectBudget {
		t.Errorf("the preferred protocol answered at once, yet detection took %v", took)
	}
}

func TestDetectInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := forward.Detect(ctx, openers(lister()), nil)
	if !errors.Is(err, context.Canceled) || errors.Is(err, forward.ErrNoGateway) {
		t.Errorf("err = %v; want the interruption, not 'no gateway'", err)
	}
}

func TestOpenByName(t *testing.T) {
	up, ipt := lister(), &protocol{props: forward.Properties{Name: "iptables", Gateway: "i", Local: true}}
	os := []forward.Opener{up.opener(true), ipt.opener(false)}
	g, err := forward.Open(context.Background(), os, "iptables", nil)
	if err != nil || g.Backend.Properties().Name != "iptables" || g.Detection != nil || ipt.reales.Load() != 1 {
		t.Errorf("Open iptables = %v, %v", g, err)
	}
	if _, err := forward.Open(context.Background(), os, "carrier-pigeon", nil); err == nil ||
		!strings.Contains(err.Error(), `"carrier-pigeon" is not available`) || !strings.Contains(err.Error(), "use auto, upnp or iptables") {
		t.Errorf("unknown backend: %v", err)
	}
	g, err = forward.Open(context.Background(), os, forward.Auto, nil)
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
