package probe

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/portfwd/portfwd/forward"
)

// survey is what one check learns once for all targets: the gateway's
// mappings and WAN address, and what the outside vantage saw from each
// origin (see origin).
type survey struct {
	gatewayChecked bool
	props          forward.Properties
	mappings       map[forward.Key]forward.Mapping
	listErr        error
	external       netip.Addr
	externalErr    error

	self6   forward.SelfIPv6
	dual    map[string]bool // rules with an IPv6 target
	outside map[netip.Addr]*vantageAnswer
}

// vantageAnswer is what the vantage said to the requests from one origin.
type vantageAnswer struct {
	err      error
	observed netip.Addr // the address the vantage saw us come from
	results  map[Request]Result
}

func (env *survey) readGateway(ctx context.Context, b forward.Backend) {
	env.props = b.Properties()
	ms, err := b.List(ctx)
	env.listErr = err
	env.mappings = make(map[forward.Key]forward.Mapping, len(ms))
	for _, m := range ms {
		env.mappings[m.Key] = m
	}
	env.external, env.externalErr = b.ExternalAddr(ctx)
}

// origin is the address t's vantage request leaves from: over IPv4 any
// (0.0.0.0: the router gives the home one public address), over IPv6 the
// server's own address, which the probe server sees and probes. Invalid
// when there is none to ask from (an IPv6 target for self on a host
// without a global IPv6 address).
func (t Target) origin() netip.Addr {
	if t.Family() == forward.IPv6 {
		return t.Internal.Addr()
	}
	return netip.IPv4Unspecified()
}

// Family is the address family t is checked over.
func (t Target) Family() forward.Family { return t.External.Family }

// askVantage sends the targets to the vantage, from each target's origin,
// MaxProbesPerRequest to a request so a probe server's rate limit is not
// spent per rule, the requests at once.
func (env *survey) askVantage(ctx context.Context, v OutsideProber, targets []Target) {
	env.outside = map[netip.Addr]*vantageAnswer{}
	type chunk struct {
		from netip.Addr
		reqs []Request
	}
	var chunks []chunk
	for _, group := range byOrigin(targets) {
		from := group[0].origin()
		env.outside[from] = &vantageAnswer{results: map[Request]Result{}}
		for i := 0; i < len(group); i += MaxProbesPerRequest {
			c := chunk{from: from}
			for _, t := range group[i:min(i+MaxProbesPerRequest, len(group))] {
				c.reqs = append(c.reqs, t.request())
			}
			chunks = append(chunks, c)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range chunks {
		wg.Go(func() {
			observed, results, err := v.Probe(ctx, c.from, c.reqs)
			mu.Lock()
			defer mu.Unlock()
			env.outside[c.from].record(c.reqs, observed, results, err)
		})
	}
	wg.Wait()
}

// byOrigin groups the targets that can be asked for by origin, in the
// order their origins first appear.
func byOrigin(targets []Target) [][]Target {
	var groups [][]Target
	index := map[netip.Addr]int{}
	for _, t := range targets {
		from := t.origin()
		if !from.IsValid() {
			continue
		}
		i, ok := index[from]
		if !ok {
			i = len(groups)
			index[from] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], t)
	}
	return groups
}

// record keeps one vantage answer.
func (a *vantageAnswer) record(chunk []Request, observed netip.Addr, results []Result, err error) {
	if err != nil {
		a.err = err
		return
	}
	a.observed = observed
	for i, res := range results {
		if i < len(chunk) {
			a.results[chunk[i]] = res
		}
	}
}

// answer is what the vantage said to t's origin; nil when it was not asked.
func (env *survey) answer(t Target) *vantageAnswer {
	if !t.origin().IsValid() {
		return nil
	}
	return env.outside[t.origin()]
}

// vantageError is why the vantage could not be asked for t: nil when it
// was, or was not meant to be (no vantage; an IPv6 server on another host,
// which only that host can have checked). Over IPv6 it says when the
// probe server answered over IPv4 all the same.
func (env *survey) vantageError(t Target) error {
	a := env.answer(t)
	if a == nil || a.err == nil || errors.Is(a.err, ErrNotThisHost) {
		return nil
	}
	if v4 := env.outside[netip.IPv4Unspecified()]; t.Family() == forward.IPv6 && v4 != nil && v4.err == nil {
		return fmt.Errorf("the probe server answered over IPv4 only: %w", a.err)
	}
	return a.err
}

// address is where friends connect for t (Report.Address).
func (env *survey) address(t Target, res Result) netip.AddrPort {
	switch {
	case res.Answered:
		return res.Addr
	case t.Family() == forward.IPv6:
		return t.Internal
	case env.external.IsValid() && forward.IsPublic(env.external):
		return netip.AddrPortFrom(env.external, t.External.ExternalPort)
	}
	return netip.AddrPort{}
}

// rulesWithIPv6 is the set of rules among targets checked over IPv6.
func rulesWithIPv6(targets []Target) map[string]bool {
	out := map[string]bool{}
	for _, t := range targets {
		if t.Family() == forward.IPv6 {
			out[t.Rule] = true
		}
	}
	return out
}

// MaxProbesPerRequest is how many probes one request to a probe server
// carries; the server's default limit.
const MaxProbesPerRequest = 16

func (t Target) request() Request { return Request{Kind: t.Kind, Port: t.External.ExternalPort} }

// gatewayStep: is the mapping there, pointing at the server? reached is
// whether the vantage reached t from outside (see pinholeStep).
func (env *survey) gatewayStep(t Target, reached bool) Step {
	s := Step{Layer: LayerGateway}
	if t.Family() == forward.IPv6 && env.gatewayChecked && env.listErr == nil {
		return env.pinholeStep(t, reached)
	}
	switch m, ok := env.mappings[t.External]; {
	case !env.gatewayChecked:
		s.Status, s.Message = StatusSkip, "gateway not checked"
	case env.listErr != nil:
		s.Status, s.Message = StatusWarn, "could not read the gateway's mappings: "+env.listErr.Error()
	case !ok:
		s.Status, s.Message = StatusFail, fmt.Sprintf("mapping missing on the gateway: nothing forwards %s", t.External)
		s.Fix = "run portfwd apply (a router reboot or an expired lease removes mappings)"
	case m.InternalHost != t.Internal.Addr() || m.InternalPort != t.Internal.Port():
		s.Status = StatusFail
		s.Message = fmt.Sprintf("the gateway forwards %s to %s:%d, not to %s", t.External, m.InternalHost, m.InternalPort, t.Internal)
		s.Fix = "run portfwd apply; if the mapping is not portfwd's, remove it on the router"
	case !m.Enabled:
		s.Status, s.Message = StatusFail, fmt.Sprintf("the mapping for %s is disabled on the gateway", t.External)
		s.Fix = "enable it in the router's page, or run portfwd apply"
	default:
		s.Status, s.Message = StatusOK, fmt.Sprintf("%s -> %s (lease %s)", t.External, t.Internal, forward.LeaseString(m.Lease))
	}
	return s
}

// cgnatFix is what can work when the router's WAN side is not the
// internet and this host has no IPv6 to offer instead.
const cgnatFix = "inbound forwarding cannot work from behind carrier-grade NAT or another router: use IPv6 if your ISP gives you one, a tunnel to a VPS (WireGuard), or ask your ISP for a public IPv4 address"

// wanStep: is the router's own WAN address reachable from the internet?
// Over IPv6 there is no WAN address in between: see addressStep.
func (env *survey) wanStep(t Target) Step {
	if t.Family() == forward.IPv6 {
		return env.addressStep(t)
	}
	s := Step{Layer: LayerWAN}
	observed := env.observed4()
	switch {
	case !env.gatewayChecked:
		s.Status, s.Message = StatusSkip, "gateway not checked"
	case errors.Is(env.externalErr, forward.ErrDoubleNAT):
		s.Status, s.Message, s.Fix = StatusFail, "carrier-grade NAT or another router in front: "+env.externalErr.Error(), env.cgnatFix(t)
	case env.externalErr != nil:
		s.Status, s.Message = StatusWarn, "the gateway did not say its WAN address: "+env.externalErr.Error()
	case !forward.IsPublic(env.external):
		s.Status, s.Fix = StatusFail, env.cgnatFix(t)
		s.Message = fmt.Sprintf("carrier-grade NAT or another router in front: the router's WAN address %s is not public", env.external)
	case observed.IsValid() && observed != env.external:
		s.Status, s.Fix = StatusFail, env.cgnatFix(t)
		s.Message = fmt.Sprintf("another NAT in front of the router: the probe server saw this network as %s, the router's WAN address is %s", observed, env.external)
	default:
		s.Status, s.Message = StatusOK, fmt.Sprintf("public WAN address %s", env.external)
	}
	return s
}

// observed4 is the address the vantage saw this network's IPv4 requests
// come from; invalid when it was not asked over IPv4.
func (env *survey) observed4() netip.Addr {
	if a := env.outside[netip.IPv4Unspecified()]; a != nil {
		return a.observed
	}
	return netip.Addr{}
}

// cgnatFix is what can work for t when the router's WAN side is not the
// internet: IPv6, when this host has a stable global address (named, with
// the port friends then use), else the ways around it.
func (env *survey) cgnatFix(t Target) string {
	a := env.self6.Addr
	if !a.IsValid() || !t.Self {
		return cgnatFix
	}
	friends := netip.AddrPortFrom(a, t.Internal.Port())
	if env.dual[t.Rule] {
		return fmt.Sprintf("inbound IPv4 cannot work from behind carrier-grade NAT; this rule's IPv6 pinhole is the way in: friends connect to %s over IPv6", friends)
	}
	return fmt.Sprintf("inbound IPv4 cannot work from behind carrier-grade NAT, but this host has the global IPv6 address %s: set family: dual (or ipv6) on rule %s and run portfwd apply; friends then connect to %s over IPv6",
		a, t.Rule, friends)
}

// outside asks what the vantage saw for t, or, without one, probes the
// public address from here (hairpin), which proves little either way.
func (c *Checker) outside(ctx context.Context, t Target, env *survey) (Step, Result) {
	if c.Vantage == nil {
		return c.hairpin(ctx, t, env), Result{}
	}
	if t.Family() == forward.IPv6 {
		return env.outside6(t)
	}
	s := Step{Layer: LayerOutside}
	a := env.answer(t)
	if a == nil {
		a = &vantageAnswer{}
	}
	res, ok := a.results[t.request()]
	switch {
	case a.err != nil:
		s.Status, s.Message = StatusWarn, "the probe server could not be asked: "+a.err.Error()
	case !ok:
		s.Status, s.Message = StatusWarn, "the probe server did not answer for this port"
	case res.Answered:
		s.Status, s.Message = StatusOK, fmt.Sprintf("answered from outside (%s)", res.Addr)
	case t.Kind == UDP && errors.Is(res.Err, ErrNoAnswer):
		s.Status = StatusWarn
		s.Message = "no answer from outside; a plain UDP probe cannot tell a closed port from a server that ignores it"
		s.Fix = "set probe: to the game's protocol (minecraft-bedrock, a2s) if it has one"
	default:
		s.Status, s.Message = StatusFail, fmt.Sprintf("not reachable from outside (%s): %v", res.Addr, res.Err)
		s.Fix = "check the router's own firewall and that the ISP does not block the port"
	}
	return s, res
}

// hairpin probes the router's public address from inside the LAN. Many
// routers cannot loop traffic back, and one that can proves nothing about
// the internet's view, so this is only ever a warning.
func (c *Checker) hairpin(ctx context.Context, t Target, env *survey) Step {
	s := Step{Layer: LayerHairpin, Status: StatusWarn, Fix: noVantageFix}
	if t.Family() == forward.IPv6 {
		// This host's own global address loops back inside it: the
		// router and its firewall never see the packets.
		s.Status, s.Message = StatusSkip, "no outside vantage; over IPv6 nothing inside the home can stand in for one"
		return s
	}
	if !env.external.IsValid() || !forward.IsPublic(env.external) {
		s.Status, s.Message = StatusSkip, "no outside vantage, and no public address to try from inside"
		return s
	}
	addr := netip.AddrPortFrom(env.external, t.External.ExternalPort)
	if res := c.probe(ctx, t.Kind, addr); res.Answered {
		s.Message = fmt.Sprintf("%s answered from inside the LAN (hairpin): a weak signal, not proof from outside", addr)
	} else {
		s.Message = fmt.Sprintf("%s did not answer from inside the LAN; many routers cannot hairpin, so this proves nothing", addr)
	}
	return s
}
