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
// mappings and WAN address, and what the outside vantage saw.
type survey struct {
	gatewayChecked bool
	mappings       map[forward.Key]forward.Mapping
	listErr        error
	external       netip.Addr
	externalErr    error

	vantageErr error
	observed   netip.Addr // the address the vantage saw us come from
	outside    map[Request]Result
}

func (env *survey) readGateway(ctx context.Context, b forward.Backend) {
	ms, err := b.List(ctx)
	env.listErr = err
	env.mappings = make(map[forward.Key]forward.Mapping, len(ms))
	for _, m := range ms {
		env.mappings[m.Key] = m
	}
	env.external, env.externalErr = b.ExternalAddr(ctx)
}

// askVantage sends the targets to the vantage, MaxProbesPerRequest to a
// request so a probe server's rate limit is not spent per rule, the
// requests at once.
func (env *survey) askVantage(ctx context.Context, v OutsideProber, targets []Target) {
	var chunks [][]Request
	for i := 0; i < len(targets); i += MaxProbesPerRequest {
		var chunk []Request
		for _, t := range targets[i:min(i+MaxProbesPerRequest, len(targets))] {
			chunk = append(chunk, t.request())
		}
		chunks = append(chunks, chunk)
	}
	env.outside = map[Request]Result{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, chunk := range chunks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			observed, results, err := v.Probe(ctx, chunk)
			mu.Lock()
			defer mu.Unlock()
			env.record(chunk, observed, results, err)
		}()
	}
	wg.Wait()
}

// record keeps one vantage answer.
func (env *survey) record(chunk []Request, observed netip.Addr, results []Result, err error) {
	if err != nil {
		env.vantageErr = err
		return
	}
	env.observed = observed
	for i, res := range results {
		if i < len(chunk) {
			env.outside[chunk[i]] = res
		}
	}
}

// MaxProbesPerRequest is how many probes one request to a probe server
// carries; the server's default limit.
const MaxProbesPerRequest = 16

func (t Target) request() Request { return Request{Kind: t.Kind, Port: t.External.ExternalPort} }

// gatewayStep: is the mapping there, pointing at the server?
func (env *survey) gatewayStep(t Target) Step {
	s := Step{Layer: LayerGateway}
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
// internet.
const cgnatFix = "inbound forwarding cannot work from behind carrier-grade NAT or another router: use IPv6 if your ISP gives you one, a tunnel to a VPS (WireGuard), or ask your ISP for a public IPv4 address"

// wanStep: is the router's own WAN address reachable from the internet?
func (env *survey) wanStep() Step {
	s := Step{Layer: LayerWAN}
	switch {
	case !env.gatewayChecked:
		s.Status, s.Message = StatusSkip, "gateway not checked"
	case errors.Is(env.externalErr, forward.ErrDoubleNAT):
		s.Status, s.Message, s.Fix = StatusFail, "carrier-grade NAT or another router in front: "+env.externalErr.Error(), cgnatFix
	case env.externalErr != nil:
		s.Status, s.Message = StatusWarn, "the gateway did not say its WAN address: "+env.externalErr.Error()
	case !forward.IsPublic(env.external):
		s.Status, s.Fix = StatusFail, cgnatFix
		s.Message = fmt.Sprintf("carrier-grade NAT or another router in front: the router's WAN address %s is not public", env.external)
	case env.observed.IsValid() && env.observed != env.external:
		s.Status, s.Fix = StatusFail, cgnatFix
		s.Message = fmt.Sprintf("another NAT in front of the router: the probe server saw this network as %s, the router's WAN address is %s", env.observed, env.external)
	default:
		s.Status, s.Message = StatusOK, fmt.Sprintf("public WAN address %s", env.external)
	}
	return s
}

// outside asks what the vantage saw for t, or, without one, probes the
// public address from here (hairpin), which proves little either way.
func (c *Checker) outside(ctx context.Context, t Target, env *survey) (Step, Result) {
	if c.Vantage == nil {
		return c.hairpin(ctx, t, env), Result{}
	}
	s := Step{Layer: LayerOutside}
	res, ok := env.outside[t.request()]
	switch {
	case env.vantageErr != nil:
		s.Status, s.Message = StatusWarn, "the probe server could not be asked: "+env.vantageErr.Error()
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
