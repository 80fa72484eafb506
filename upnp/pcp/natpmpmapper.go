package pcp

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// natpmpFacts are NAT-PMP's names and abilities: it maps ports only for
// the host that asks (RFC 6886 §3.3).
var natpmpFacts = facts{name: "natpmp", title: "NAT-PMP",
	protocols: []string{"NAT-PMP (RFC 6886)"}, thirdParty: forward.ThirdPartyNo, timeout: defaultNATPMPTimeout}

// defaultNATPMPTimeout bounds one NAT-PMP request, retransmissions
// included. RFC 6886 §3.1's nine tries take over a minute; a gateway on
// the LAN answers in milliseconds or not at all.
const defaultNATPMPTimeout = time.Second

// natpmpMapper is the mapper for NAT-PMP (RFC 6886).
type natpmpMapper struct {
	x     *exchange
	local netip.Addr // the only internal host NAT-PMP maps to
}

// newNATPMPMapper is the NAT-PMP mapper for the server, asking from local;
// a zero timeout is the default.
func newNATPMPMapper(server netip.AddrPort, local netip.Addr, timeout time.Duration) mapper {
	return &natpmpMapper{local: local, x: &exchange{server: server, title: natpmpFacts.title, fallback: "upnp",
		timeout: cmp.Or(timeout, defaultNATPMPTimeout), initial: 250 * time.Millisecond, stopOnRefused: true}}
}

// facts are NAT-PMP's.
func (n *natpmpMapper) facts() facts { return natpmpFacts }

// announce asks the external address (§3.2); its answer carries the epoch.
func (n *natpmpMapper) announce(ctx context.Context) (answer, error) {
	r, err := n.ask(ctx, natpmpExternalRequest(), natpmpOpExternal, 0)
	if err != nil {
		return answer{}, err
	}
	a := answer{answered: true, epoch: r.epoch}
	if r.result != NATPMPSuccess {
		return a, natpmpFailure(r.result)
	}
	a.external = r.external
	return a, nil
}

// mapPort sends a mapping request (§3.3) for this host only: the gateway
// maps to the request's source address whatever else it says.
func (n *natpmpMapper) mapPort(ctx context.Context, e *entry, lifetime time.Duration) (answer, error) {
	if e.InternalHost.Unmap() != n.local {
		return answer{}, n.otherHost(e.InternalHost)
	}
	return n.request(ctx, e.Protocol, e.InternalPort, e.ExternalPort, seconds(lifetime))
}

// unmap sends the deletion of §3.4: the mapping request with lifetime 0.
// §3.4 has the client suggest external port 0, which the gateway ignores;
// portfwd suggests the port granted, so that a gateway that does look at
// it deletes that mapping and no other.
func (n *natpmpMapper) unmap(ctx context.Context, e entry) (answer, error) {
	return n.request(ctx, e.Protocol, e.InternalPort, e.GrantedPort, 0)
}

// request sends one mapping request and reads the grant.
func (n *natpmpMapper) request(ctx context.Context, p forward.Protocol, internal, external uint16, lifetime uint32) (answer, error) {
	op, err := natpmpOp(p)
	if err != nil {
		return answer{}, err
	}
	r, err := n.ask(ctx, natpmpMapRequest(op, internal, external, lifetime), op, internal)
	if err != nil {
		return answer{}, err
	}
	a := answer{answered: true, epoch: r.epoch}
	if r.result != NATPMPSuccess {
		return a, natpmpFailure(r.result)
	}
	a.port, a.lifetime = r.mapped, time.Duration(r.lifetime)*time.Second
	return a, nil
}

// ask sends req and waits for its answer: the same opcode (§3.3: "the 'x'
// in the OP field MUST match"), and for a mapping the same internal port,
// the field that tells which request a response answers (§3.5). A failure
// with the header only cannot say more and answers too.
func (n *natpmpMapper) ask(ctx context.Context, req []byte, op uint8, internal uint16) (natpmpResponse, error) {
	return roundTrip(ctx, n.x, req, decodeNATPMP, func(r natpmpResponse) bool {
		if r.short && r.result == NATPMPUnsupportedVersion {
			return true // §3.5 draws it with opcode 0 whatever was asked
		}
		return r.op == op && (op == natpmpOpExternal || r.short || r.internal == internal)
	})
}

// restarted is the rule of RFC 6886 §3.6: the client's conservative
// estimate of the gateway's epoch is the last one plus 7/8 of the time
// elapsed on the client's clock; an epoch more than 2 s below it means the
// gateway rebooted or otherwise lost its mappings.
func (n *natpmpMapper) restarted(prev uint32, prevAt time.Time, cur uint32, now time.Time) bool {
	elapsed := max(now.Sub(prevAt), 0) // a clock that stepped back: no time passed
	estimate := float64(prev) + elapsed.Seconds()*7/8
	return float64(cur) < estimate-2
}

// siblings are the records of m's protocol and internal port. A NAT-PMP
// gateway keys a host's mappings by internal port: RFC 6886 §3.3 has it
// answer a request for a mapped internal port with the mapping it has, and
// miniupnpd 2.3.1 deletes every NAT-PMP mapping of the asking host's
// internal port and protocol, whatever external port the deletion names
// (§3.4 lets it ignore the port).
func (n *natpmpMapper) siblings(records []entry, m forward.Mapping) []entry {
	var out []entry
	for _, r := range records {
		if r.Key != m.Key && r.Protocol == m.Protocol && r.InternalPort == m.InternalPort {
			out = append(out, r)
		}
	}
	return out
}

// otherHost is the refusal of a mapping to host, another host than this
// one.
func (n *natpmpMapper) otherHost(host netip.Addr) error {
	return &gatewayError{what: fmt.Sprintf("%v is another host, and NAT-PMP only maps ports to the host that asks (RFC 6886 §3.3); "+
		"run portfwd on %v, or use a gateway that speaks PCP with third-party mappings, or UPnP", host, host),
		cause: []error{forward.ErrNotAuthorized}}
}

// natpmpMeaning is what each result code of RFC 6886 §3.5 means for the
// user, and the sentinel it is for callers. A gateway that does not speak
// version 0, or not the request, counts as one that does not answer.
var natpmpMeaning = map[NATPMPResultCode]struct {
	advice   string
	sentinel error
}{
	NATPMPUnsupportedVersion: {"the gateway speaks another version of the protocol; use backend pcp or upnp", forward.ErrNoGateway},
	NATPMPNotAuthorized:      {"NAT-PMP is switched off or refuses this host; enable it on the router, or use backend upnp", forward.ErrNotAuthorized},
	NATPMPOutOfResources:     {"the gateway has no room for another mapping; remove unused mappings on the router or try again later", nil},
	NATPMPUnsupportedOpcode:  {"the gateway does not implement this request; use backend upnp", forward.ErrNoGateway},
}

// natpmpFailure is the error for a result code other than success. A
// network failure (code 3) is diagnosed by the backend, which looks at the
// external address: miniupnpd, like many routers, answers so when its WAN
// address is private or shared (carrier-grade NAT).
func natpmpFailure(code NATPMPResultCode) error {
	e := &gatewayError{what: code.Error(), cause: []error{code}}
	if code == NATPMPNetworkFailure {
		e.wan = true
		return e
	}
	meaning, ok := natpmpMeaning[code]
	if !ok {
		// §3.5: undefined result codes are fatal errors of the request.
		meaning.advice = "the gateway's answer is not in RFC 6886; use backend upnp"
	}
	e.advice = meaning.advice
	if meaning.sentinel != nil {
		e.cause = append(e.cause, meaning.sentinel)
	}
	return e
}
