package probe

import (
	"errors"
	"fmt"

	"github.com/portfwd/portfwd/forward"
)

// The layers of an IPv6 target. There is no NAT on IPv6: friends connect
// to the server's own global address, the router's firewall lets them in
// only through a pinhole, and the probe server can only probe the
// address a request comes from, so the server's host must ask it.

// pinholeStep is gatewayStep over IPv6: is the pinhole there, open to
// the server? Pinholes cannot be listed on every router (UPnP keeps no
// list portfwd can read), so a pinhole portfwd does not hold may still
// be there: when the vantage reached the server (reached), it is.
func (env *survey) pinholeStep(t Target, reached bool) Step {
	s := Step{Layer: LayerGateway}
	m, ok := env.mappings[t.External]
	switch {
	case !env.props.IPv6:
		s.Status, s.Fix = StatusWarn, noPinholeFix(env.props.Name)
		s.Message = fmt.Sprintf("the %s backend cannot open or see IPv6 pinholes, so portfwd cannot tell whether the router lets %s in to %s", env.props.Name, t.External, t.Internal)
		if reached {
			s.Message += "; the probe server reached it, so something did"
		}
	case !ok && reached:
		s.Status = StatusWarn
		s.Message = fmt.Sprintf("portfwd holds no pinhole for %s, yet the probe server reached %s: the router lets it in another way (a pinhole another program opened, which portfwd cannot see, or no IPv6 firewall)", t.External, t.Internal)
	case !ok:
		s.Status = StatusFail
		s.Message = fmt.Sprintf("pinhole missing on the gateway: its IPv6 firewall lets nothing in to %s (%s)", t.Internal, t.External)
		s.Fix = "run portfwd apply (a rule with family: ipv6 or dual opens the pinhole; a router reboot or an expired lease removes it)"
	case m.InternalHost != t.Internal.Addr() || m.InternalPort != t.Internal.Port():
		s.Status = StatusFail
		s.Message = fmt.Sprintf("the pinhole %s opens [%s]:%d, not %s", t.External, m.InternalHost, m.InternalPort, t.Internal)
		s.Fix = "run portfwd apply (this host's IPv6 address may have changed since the pinhole was opened)"
	case !m.Enabled:
		s.Status, s.Message = StatusFail, fmt.Sprintf("the pinhole %s is disabled on the gateway", t.External)
		s.Fix = "enable it in the router's page, or run portfwd apply"
	default:
		s.Status, s.Message = StatusOK, fmt.Sprintf("pinhole %s -> %s (lease %s)", t.External, t.Internal, forward.LeaseString(m.Lease))
	}
	return s
}

// noPinholeFix is what to do on a backend that opens no IPv6 pinholes.
func noPinholeFix(backend string) string {
	if backend == "natpmp" {
		return "NAT-PMP has no IPv6: use backend pcp (its successor) or upnp if the router speaks them, or open the pinhole in the router's page"
	}
	return "use a backend that opens IPv6 pinholes (upnp or pcp on the router, iptables on a Linux router), or open the pinhole in the router's page"
}

// addressStep is wanStep over IPv6: no router address stands in front,
// so the question is whether the server's own address is one the
// internet reaches, and is the one the probe server saw.
func (env *survey) addressStep(t Target) Step {
	s := Step{Layer: LayerWAN}
	a := t.Internal.Addr()
	var observed = env.answer(t)
	switch {
	case !a.IsValid():
		s.Status, s.Message = StatusSkip, "no IPv6 address to check (see the local layer)"
	case a.IsPrivate():
		s.Status = StatusFail
		s.Message = fmt.Sprintf("%s is a unique local address (fc00::/7): the internet cannot reach it", a)
		s.Fix = "use the host's global IPv6 address (internal_host: self picks its stable one)"
	case !a.IsGlobalUnicast():
		s.Status = StatusFail
		s.Message = fmt.Sprintf("%s is not a global IPv6 address: the internet cannot reach it", a)
		s.Fix = "use the host's global IPv6 address (internal_host: self picks its stable one)"
	case observed != nil && observed.observed.IsValid() && observed.observed != a:
		s.Status = StatusFail
		s.Message = fmt.Sprintf("the probe server saw this host as %s, not as %s: something in front translates IPv6 addresses (NPTv6)", observed.observed, a)
		s.Fix = "friends must use the address the internet sees: open the port on the device that translates, or use family: ipv4"
	default:
		s.Status, s.Message = StatusOK, fmt.Sprintf("global IPv6 address %s: no NAT, friends connect to it directly", a)
	}
	return s
}

// outside6 is what the vantage saw of t over IPv6.
func (env *survey) outside6(t Target) (Step, Result) {
	s := Step{Layer: LayerOutside}
	a := env.answer(t)
	switch {
	case a == nil:
		s.Status, s.Message = StatusSkip, "not checked from outside: this host has no IPv6 address to ask from"
		return s, Result{}
	case errors.Is(a.err, ErrNotThisHost):
		s.Status, s.Fix = StatusWarn, fmt.Sprintf("run portfwd check on that host, or ask a friend to run portfwd probe %s", t.Internal)
		s.Message = fmt.Sprintf("not checked from outside: the probe server probes only the address a request comes from, and %s is another host's", t.Internal.Addr())
		return s, Result{}
	case a.err != nil:
		s.Status, s.Message = StatusWarn, "not checked from outside over IPv6: "+a.err.Error()
		return s, Result{}
	}
	res, ok := a.results[t.request()]
	switch {
	case !ok:
		s.Status, s.Message = StatusWarn, "the probe server did not answer for this port"
	case res.Answered:
		s.Status, s.Message = StatusOK, fmt.Sprintf("answered from outside over IPv6 (%s)", res.Addr)
	case t.Kind == UDP && errors.Is(res.Err, ErrNoAnswer):
		s.Status = StatusWarn
		s.Message = "no answer from outside over IPv6; a plain UDP probe cannot tell a closed port from a server that ignores it"
		s.Fix = "set probe: to the game's protocol (minecraft-bedrock, a2s) if it has one"
	default:
		s.Status, s.Fix = StatusFail, env.outside6Fix()
		s.Message = fmt.Sprintf("not reachable from outside over IPv6 (%s): %v", res.Addr, res.Err)
	}
	return s, res
}

// outside6Fix is what to do when nothing from outside gets in over IPv6.
func (env *survey) outside6Fix() string {
	if env.gatewayChecked && !env.props.IPv6 {
		return "the router's IPv6 firewall lets in only what a pinhole opens: " + noPinholeFix(env.props.Name)
	}
	return "check this host's own firewall for IPv6 (ip6tables or nftables; rules often allow the port over IPv4 only) and the router's IPv6 firewall"
}

// noAddress6 is the local step of an IPv6 target for self on a host
// without a stable global IPv6 address: nothing to check, and why.
func (c *Checker) noAddress6(t Target) Step {
	why := c.Self6.Why
	if why == "" {
		why = "this host has no stable global IPv6 address"
	}
	return Step{Layer: LayerLocal, Status: StatusFail,
		Message: fmt.Sprintf("no IPv6 address to open %s to: %s", t.External, why),
		Fix:     "check that the router hands out IPv6 (SLAAC or DHCPv6) and this host takes it, or set family: ipv4 on the rule"}
}

// ipv6ListenFix is what makes a server that listens on IPv4 only (bound
// to 0.0.0.0: the most common reason a pinhole leads nowhere) take IPv6
// too, in the words of the server kind's own settings where it has them.
func ipv6ListenFix(kind Kind, port uint16) string {
	const generic = "make the server listen on IPv6 too: bind it to :: (every IPv4 and IPv6 address; on Linux it takes IPv4 as well) instead of 0.0.0.0"
	switch kind {
	case MinecraftJava:
		return generic + "; for Minecraft leave server-ip= empty in server.properties, and do not start Java with -Djava.net.preferIPv4Stack=true (set it to false or drop it)"
	case MinecraftBedrock:
		return fmt.Sprintf("Bedrock Dedicated Server answers IPv6 on its server-portv6 (19133 unless set): set server-portv6=%d in server.properties, or point the rule at that port", port)
	}
	return generic
}
