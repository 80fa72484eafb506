package probe

import (
	"context"
	"errors"
	"fmt"

	"github.com/portfwd/portfwd/forward"
)

// local checks the server on the LAN: who is bound to the port (when it
// runs on this machine) and whether it answers in its protocol.
func (c *Checker) local(ctx context.Context, t Target) (Step, Result) {
	s := Step{Layer: LayerLocal}
	if !t.Internal.Addr().IsValid() {
		return c.noAddress6(t), Result{}
	}
	owner := ""
	if t.Self {
		bound, ok := c.bound(t)
		if !ok {
			return bound, Result{}
		}
		owner = bound.Message
	}
	res := c.probe(ctx, t.Kind, t.Internal)
	if problem := c.hostProblem(t); problem != "" && !res.Answered {
		s.Status, s.Message, s.Fix = StatusFail, fmt.Sprintf("%s does not answer: %s", t.Internal, problem), FixInternalHost
		return s, res
	}
	return answerStep(t, res, owner), res
}

// answerStep is the local step once t's server was probed (res); owner
// names who holds its port, when known.
func answerStep(t Target, res Result, owner string) Step {
	s := Step{Layer: LayerLocal}
	switch {
	case res.Answered && owner != "":
		s.Status, s.Message = StatusOK, fmt.Sprintf("%s; it answers %s on %s", owner, t.Kind, t.Internal)
	case res.Answered:
		s.Status, s.Message = StatusOK, fmt.Sprintf("%s answers on %s", t.Kind, t.Internal)
	case t.Kind == UDP && t.Self:
		// Bound, and plain UDP cannot ask more of an unknown server.
		s.Status, s.Message = StatusOK, fmt.Sprintf("something is bound to udp/%d", t.Internal.Port())
	case errors.Is(res.Err, ErrNoRoute):
		s.Status, s.Message = StatusFail, fmt.Sprintf("%s is out of reach: %v", t.Internal, routeCause(res.Err))
		s.Fix = FixInternalHost
	case t.Kind == UDP && errors.Is(res.Err, ErrNoAnswer):
		s.Status, s.Message = StatusWarn, fmt.Sprintf("no answer from %s; a plain UDP probe cannot tell more", t.Internal)
	case errors.Is(res.Err, ErrRefused) && t.Family() == forward.IPv6:
		s.Status, s.Message = StatusFail, fmt.Sprintf("nothing listening on %s over IPv6", t.Internal)
		s.Fix = "start the server; if it runs, it listens on IPv4 only: " + ipv6ListenFix(t.Kind, t.Internal.Port())
	case errors.Is(res.Err, ErrRefused):
		s.Status, s.Message = StatusFail, fmt.Sprintf("nothing listening on %s", t.Internal)
		s.Fix = "start the server, and check internal_port and internal_host"
	default:
		s.Status, s.Message = StatusFail, fmt.Sprintf("%s does not answer as %s: %v", t.Internal, t.Kind, res.Err)
		s.Fix = "check that the server runs, the port is the right one, and the host's firewall allows it"
	}
	return s
}

// bound looks at this machine's sockets: nothing bound, or bound to
// loopback only, fails here with the process named; ok is true when the
// probe should go on, and then s.Message names who serves the port.
func (c *Checker) bound(t Target) (s Step, ok bool) {
	lookup := c.Bindings
	if lookup == nil {
		lookup = Bindings
	}
	bs, err := lookup(t.Kind.Network(), t.Internal.Port())
	if err != nil {
		return Step{}, true // not on Linux, or /proc unreadable: the probe decides
	}
	rep := DescribeLocal(t.Kind.Network(), t.Internal.Port(), t.Internal.Addr(), bs)
	if rep.OK {
		return Step{Message: rep.Message}, true
	}
	s = Step{Layer: LayerLocal, Status: StatusFail, Message: rep.Message, Fix: rep.Fix}
	if t.Family() == forward.IPv6 && ipv4Only(bs) {
		s.Fix = ipv6ListenFix(t.Kind, t.Internal.Port())
	}
	if len(bs) == 0 {
		s.Message = fmt.Sprintf("nothing listening on %s: %s", t.Internal, rep.Message)
		s.Fix = "start the server, and check the rule's internal_port"
	}
	return s, false
}

// FixInternalHost is the advice for a rule whose internal host the
// gateway, or this machine, cannot reach.
const FixInternalHost = "check the rule's internal_host: it must be a host on one of the router's LAN networks (on the router, ip -br addr lists them and ip route its routes)"

// hostProblem is why the gateway cannot reach t's server, when the
// gateway can tell (forward.HostChecker); "" otherwise, and for a server
// on this machine.
func (c *Checker) hostProblem(t Target) string {
	if t.Self || c.Gateway == nil {
		return ""
	}
	hc, ok := forward.As[forward.HostChecker](c.Gateway)
	if !ok {
		return ""
	}
	return hc.HostProblem(t.Internal.Addr())
}
