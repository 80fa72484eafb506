package probe

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// Layer is one step of the diagnosis, in the order inbound traffic meets
// them from the server outwards.
type Layer string

// The layers a check reports.
const (
	LayerLocal   Layer = "local"   // the server answers on the LAN
	LayerGateway Layer = "gateway" // the router holds the mapping, pointing at the server
	LayerWAN     Layer = "wan"     // the router's WAN address is public
	LayerOutside Layer = "outside" // a vantage outside the home reaches the server
	LayerHairpin Layer = "hairpin" // the public address answers from inside (weak signal)
)

// Status is how one layer went.
type Status string

// The statuses of a layer.
const (
	StatusOK   Status = "ok"
	StatusFail Status = "fail"
	StatusWarn Status = "warn" // could not tell, or a weak signal
	StatusSkip Status = "skip" // not checked (no gateway, no vantage)
)

// Step is the outcome of one layer.
type Step struct {
	Layer   Layer
	Status  Status
	Message string
	Fix     string // what to do, when Status is fail
}

// Verdict is the answer for one rule.
type Verdict string

// The verdicts.
const (
	Reachable    Verdict = "reachable"
	Unreachable  Verdict = "unreachable"
	Inconclusive Verdict = "inconclusive"
)

// Target is one thing to check: a rule's port in one address family,
// probed with its kind. A dual rule has an IPv4 and an IPv6 target.
type Target struct {
	Rule string
	// Tag is the description the rule's mappings carry (forward.Tag).
	Tag  string `json:"-"`
	Kind Kind
	// External is the mapping's key: the port on the router's WAN address
	// (IPv4), or the pinhole (IPv6: no NAT, so the internal port, and
	// External.Family is IPv6).
	External forward.Key
	// Internal is the server: on the LAN (IPv4), or at its global address
	// (IPv6), which friends connect to directly. Its address is invalid
	// for an IPv6 target for self on a host without a global IPv6 address.
	Internal netip.AddrPort
	Self     bool // the server runs on this machine
	// AnyExternal is external_port: any: External is only the suggested
	// port until Check finds the port the gateway granted.
	AnyExternal bool
}

// Report is the diagnosis of one target.
type Report struct {
	Target
	Steps   []Step
	Verdict Verdict
	Cause   string // the first failing layer's message, or why inconclusive
	Fix     string
	Info    *Info // what the server said about itself, when it answered
	Latency time.Duration
	// Address is where friends connect, when known: what the probe server
	// reached, else the router's public address (IPv4) or the server's
	// global address (IPv6), with the port.
	Address netip.AddrPort
	// VantageErr is why the probe server could not be asked (unreachable,
	// a refused token): the check from outside did not run, which a
	// caller must not take for a pass. Nil when it was asked or none was
	// named.
	VantageErr error
}

// OutsideProber probes the home from outside (a Vantage, the probe
// server's client): the address a request from from is seen with. from's
// family is the family asked over; over IPv4 it is unspecified (the router
// gives the home one public address), over IPv6 it is the address to
// check, which the request must come from (there is no NAT). Observed is
// the address the vantage saw the request come from.
type OutsideProber interface {
	Probe(ctx context.Context, from netip.Addr, probes []Request) (observed netip.Addr, results []Result, err error)
}

var _ OutsideProber = RemoteVantage{}

// Checker runs the layered diagnosis. The zero value checks the local layer
// only; set Gateway and Vantage for the rest.
type Checker struct {
	Gateway forward.Backend // nil skips the gateway and WAN layers
	Self    netip.Addr      // this machine's LAN address
	// Self6 is this machine's stable global IPv6 address (and why, or why
	// there is none): what IPv6 rules for self open, and what to offer
	// when carrier-grade NAT closes IPv4.
	Self6   forward.SelfIPv6
	Vantage OutsideProber // nil: only hairpin, a weak signal, can look from "outside"
	// Probe and Bindings default to Run and Bindings; tests replace them.
	Probe    func(ctx context.Context, kind Kind, addr netip.AddrPort, opts Options) Result
	Bindings func(p forward.Protocol, port uint16) ([]Binding, error)
	Timeout  time.Duration // per probe; 0 means DefaultTimeout
	Parallel int           // probes at once; 0 means 32
}

// Check diagnoses every target; reports come back in target order. The
// gateway is read and the vantage asked once for all targets, and the
// local probes run while the vantage works, so checking many rules takes
// about as long as checking the slowest one.
func (c *Checker) Check(ctx context.Context, targets []Target) []Report {
	env := &survey{self6: c.Self6, dual: rulesWithIPv6(targets)}
	if c.Gateway != nil && slices.ContainsFunc(targets, func(t Target) bool { return t.AnyExternal }) {
		// The vantage must probe the granted ports, which only the
		// gateway's mappings tell: read them first.
		env.gatewayChecked = true
		env.readGateway(ctx, c.Gateway)
		targets = env.resolveGranted(targets)
	}
	outside := make(chan struct{})
	go func() {
		defer close(outside)
		if c.Vantage != nil {
			env.askVantage(ctx, c.Vantage, targets)
		}
	}()
	if c.Gateway != nil && !env.gatewayChecked {
		env.gatewayChecked = true
		env.readGateway(ctx, c.Gateway)
	}
	reports := make([]Report, len(targets))
	c.each(len(targets), func(i int) { reports[i] = c.checkLocal(ctx, targets[i]) })
	<-outside
	c.each(len(targets), func(i int) { c.finish(ctx, &reports[i], env) })
	return reports
}

// each runs fn(0..n-1) concurrently, at most c.parallel() at once.
func (c *Checker) each(n int, fn func(i int)) {
	sem := make(chan struct{}, c.parallel())
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}

// checkLocal starts t's report with the local layer.
func (c *Checker) checkLocal(ctx context.Context, t Target) Report {
	r := Report{Target: t}
	local, answer := c.local(ctx, t)
	r.Steps = append(r.Steps, local)
	if answer.Answered {
		r.Info, r.Latency = infoOf(answer), answer.Latency
	}
	return r
}

// finish adds the gateway, WAN and outside layers to r and decides. The
// outside is looked at first: over IPv6 what it reached tells a pinhole
// portfwd cannot see from one that is missing.
func (c *Checker) finish(ctx context.Context, r *Report, env *survey) {
	outside, answer := c.outside(ctx, r.Target, env)
	r.Steps = append(r.Steps, env.gatewayStep(r.Target, answer.Answered), env.wanStep(r.Target))
	r.Steps = append(r.Steps, followsFrom(r.Steps, outside))
	if answer.Answered {
		r.Info, r.Latency = infoOf(answer), answer.Latency
	}
	r.Verdict, r.Cause, r.Fix = decide(r.Steps)
	r.VantageErr = env.vantageError(r.Target)
	r.Address = env.address(r.Target, answer)
}

func infoOf(res Result) *Info {
	info := res.Info
	return &info
}

// followsFrom is the outside layer's step when an earlier layer already
// failed: nothing outside can reach a server that does not answer on the
// LAN, or a port the router does not forward, so its fix points there
// instead of at the router's firewall or the ISP.
func followsFrom(earlier []Step, outside Step) Step {
	if outside.Status != StatusFail {
		return outside
	}
	for _, s := range earlier {
		if s.Status == StatusFail {
			outside.Fix = fmt.Sprintf("expected while the %s layer fails: fix that first", s.Layer)
			return outside
		}
	}
	return outside
}

// decide picks the verdict. The cause is the first failing layer in the
// order a user should fix them: the server itself, then a WAN address that
// makes every forward useless, then the mapping, then what the outside saw.
// Reachable needs an outside vantage to have answered; hairpin alone never
// counts.
func decide(steps []Step) (Verdict, string, string) {
	for _, layer := range []Layer{LayerLocal, LayerWAN, LayerGateway, LayerOutside} {
		for _, s := range steps {
			if s.Layer == layer && s.Status == StatusFail {
				return Unreachable, s.Message, s.Fix
			}
		}
	}
	for _, s := range steps {
		if s.Layer == LayerOutside && s.Status == StatusOK {
			return Reachable, "", ""
		}
	}
	for _, s := range steps {
		if s.Layer == LayerOutside || s.Layer == LayerHairpin {
			return Inconclusive, s.Message, s.Fix
		}
	}
	return Inconclusive, "not checked from outside", noVantageFix
}

// noVantageFix is the advice when nothing outside the home could look.
const noVantageFix = "run `portfwd probe-server` on a machine outside your home (a VPS, a friend's PC) and pass its URL with --via or probe_server: in the config; or ask a friend to run `portfwd probe HOST:PORT`"

func (c *Checker) parallel() int {
	if c.Parallel > 0 {
		return c.Parallel
	}
	return 32
}

func (c *Checker) options() Options {
	return Options{Timeout: c.Timeout}
}

func (c *Checker) probe(ctx context.Context, kind Kind, addr netip.AddrPort) Result {
	if c.Probe != nil {
		return c.Probe(ctx, kind, addr, c.options())
	}
	return Run(ctx, kind, addr, c.options())
}
