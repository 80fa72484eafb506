package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/upnp"
)

// Auto detection asks every protocol at once and keeps the best that
// answered. The first pass gives them autoBudget; once one has answered,
// the others get autoWindow more: UPnP needs an SSDP answer and a
// description (miniupnpd waits ~50 ms before it answers an M-SEARCH) where
// PCP and NAT-PMP answer in one round trip, and UPnP is preferred, so the
// window is wide enough for it on a busy machine. UPnP answering ends the
// wait at once (and with the gateway remembered it answers at once). Only
// when nothing answered does a second, longer pass run, so a gateway that
// speaks nothing costs about two seconds, never a hang.
const (
	autoBudget     = 250 * time.Millisecond
	autoWindow     = 200 * time.Millisecond
	autoLongBudget = 2 * time.Second
)

// protocol is one way portfwd can talk to a gateway.
type protocol struct {
	name string // as gateway.backend spells it
	open func(ctx context.Context, gw forward.GatewaySettings, st *forward.State) (*session, error)
}

// protocols in order of preference: UPnP lists every mapping on the router,
// so conflicts with other programs are seen before they happen; PCP and
// NAT-PMP only know what portfwd made, and PCP can map for other hosts.
func (g *globals) protocols() []protocol {
	return []protocol{
		{"upnp", func(ctx context.Context, gw forward.GatewaySettings, _ *forward.State) (*session, error) {
			return g.openUPnP(ctx, gw)
		}},
		{"pcp", g.openPCP},
		{"natpmp", g.openNATPMP},
	}
}

// auto opens the protocol that serves cfg best among those that answer.
// The probes run at once, each NAT-PMP or PCP probe on a state of its own
// in memory; the chosen protocol is then opened on the real state file,
// whose lock the session holds, so it compares the gateway's epoch with
// the one recorded by the last run.
func (g *globals) auto(ctx context.Context, cfg *forward.Config) (*session, error) {
	st, err := g.openState()
	if err != nil {
		return nil, err
	}
	found := g.detect(ctx, cfg.Gateway, autoBudget)
	if len(found) == 0 {
		found = g.detect(ctx, cfg.Gateway, autoLongBudget)
	}
	chosen, err := choose(found, cfg)
	if err == nil && chosen.name != "upnp" {
		chosen.s, err = g.reopen(ctx, chosen, cfg.Gateway, st)
	}
	if err != nil {
		st.Close()
		return nil, err
	}
	chosen.s.state = st
	return chosen.s, nil
}

// reopen opens the chosen state-listed protocol again on the real state.
func (g *globals) reopen(ctx context.Context, chosen answer, gw forward.GatewaySettings, st *forward.State) (*session, error) {
	for _, p := range g.protocols() {
		if p.name != chosen.name {
			continue
		}
		s, err := p.open(ctx, gw, st)
		if err != nil {
			return nil, err
		}
		s.answered, s.why = chosen.s.answered, chosen.s.why
		return s, nil
	}
	return nil, fmt.Errorf("unknown protocol %q", chosen.name)
}

// answer is a protocol that answered.
type answer struct {
	name string
	s    *session
}

// detect opens every protocol at once within budget and returns those
// that answered, in order of preference.
func (g *globals) detect(ctx context.Context, gw forward.GatewaySettings, budget time.Duration) []answer {
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	protos := g.protocols()
	found := make([]*session, len(protos))
	var once sync.Once
	var wg sync.WaitGroup
	for i, p := range protos {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := p.open(ctx, gw, forward.MemoryState())
			if err != nil {
				return
			}
			found[i] = s
			if i == 0 {
				cancel() // the first choice answered: nothing better can come
			}
			once.Do(func() { time.AfterFunc(autoWindow, cancel) })
		}()
	}
	wg.Wait()
	var out []answer
	for i, s := range found {
		if s != nil {
			out = append(out, answer{protos[i].name, s})
		}
	}
	return out
}

// choose picks the first answer that can serve every rule: a rule for
// another host needs a protocol that maps for third parties.
func choose(found []answer, cfg *forward.Config) (answer, error) {
	if len(found) == 0 {
		return answer{}, fmt.Errorf("the gateway answered none of UPnP IGD, PCP, NAT-PMP (in %s): is port forwarding (UPnP / NAT-PMP) switched on in the router? set gateway.address if the router is not this host's default gateway: %w",
			autoLongBudget, forward.ErrNoGateway)
	}
	var names []string
	for _, f := range found {
		names = append(names, f.name)
	}
	other := otherHostRule(cfg)
	for _, f := range preferFor(found, other) {
		if other != "" && f.name == "natpmp" {
			continue // NAT-PMP maps only for the host that asks (RFC 6886 §3.3)
		}
		f.s.answered = names
		f.s.why = reason(f.name, other)
		return f, nil
	}
	return answer{}, fmt.Errorf("rule %q forwards to another host, which only UPnP (without secure mode) or PCP can do, and the gateway answered only %s; run portfwd on that host instead",
		other, strings.Join(names, ", "))
}

// preferFor reorders the answers for a config with a rule for another
// host: PCP's THIRD_PARTY option is made for that, while UPnP routers
// almost always run in secure mode and refuse it.
func preferFor(found []answer, other string) []answer {
	if other == "" {
		return found
	}
	out := slices.Clone(found)
	slices.SortStableFunc(out, func(a, b answer) int {
		switch {
		case a.name == "pcp" && b.name != "pcp":
			return -1
		case b.name == "pcp" && a.name != "pcp":
			return 1
		}
		return 0
	})
	return out
}

// otherHostRule names a rule whose internal_host is not this machine.
func otherHostRule(cfg *forward.Config) string {
	for _, r := range cfg.Rules {
		if r.InternalAddr.IsValid() {
			return r.Name
		}
	}
	return ""
}

func reason(chosen, other string) string {
	switch {
	case chosen == "upnp":
		return "UPnP lists every mapping on the router, so conflicts with other programs are seen"
	case other != "" && chosen == "pcp":
		return fmt.Sprintf("rule %q forwards to another host: PCP's THIRD_PARTY option is made for that", other)
	case chosen == "pcp":
		return "UPnP did not answer; PCP is NAT-PMP's successor"
	}
	return "UPnP and PCP did not answer"
}

// isSilence reports whether err means the protocol did not answer at all,
// as opposed to answering with a refusal.
func isSilence(err error) bool {
	return errors.Is(err, forward.ErrNoGateway) || errors.Is(err, upnp.ErrPCPUnsupported) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
