package pcp

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// pcpFacts are PCP's names and abilities: it maps ports for other hosts
// with the THIRD_PARTY option (RFC 6887 §13.1); whether the gateway allows
// it is only known when it refuses.
var pcpFacts = facts{name: "pcp", title: "PCP",
	protocols: []string{"PCP (RFC 6887)"}, thirdParty: forward.ThirdPartyYes, timeout: defaultPCPTimeout}

// defaultPCPTimeout bounds one PCP request, retransmissions included
// (RFC 6887 §8.1.1 never gives up; a gateway on the LAN answers in
// milliseconds or not at all).
const defaultPCPTimeout = 2 * time.Second

// pcpMapper is the mapper for PCP (RFC 6887). A mapping is known to the
// gateway by its nonce (§11.1), which the records keep: a renewal repeats
// it (§11.2) and a delete needs it (§15).
type pcpMapper struct {
	x     *exchange
	local netip.Addr // the client IP of every request (§7.1)
}

// newPCPMapper is the PCP mapper for the server, asking from local; a zero
// timeout is the default.
func newPCPMapper(server netip.AddrPort, local netip.Addr, timeout time.Duration) mapper {
	return &pcpMapper{local: local, x: &exchange{server: server, title: pcpFacts.title, fallback: "natpmp or upnp",
		timeout: cmp.Or(timeout, defaultPCPTimeout), initial: 250 * time.Millisecond, maxWait: time.Second, jitter: true}}
}

// facts are PCP's.
func (p *pcpMapper) facts() facts { return pcpFacts }

// announce sends ANNOUNCE (§14.1), which changes nothing and carries the
// epoch.
func (p *pcpMapper) announce(ctx context.Context) (answer, error) {
	req := pcpRequest{Opcode: pcpOpAnnounce, Client: p.local}
	m, err := p.ask(ctx, req, func(m pcpMessage) bool { return m.Opcode == pcpOpAnnounce })
	if err != nil {
		return answer{}, err
	}
	return answer{answered: true, epoch: m.Epoch}, p.failure(m, req, forward.Mapping{})
}

// mapPort sends MAP (§11.1) with the record's nonce, or a new one (§11.2);
// a mapping to another host carries THIRD_PARTY (§13.1).
func (p *pcpMapper) mapPort(ctx context.Context, e *entry, lifetime time.Duration) (answer, error) {
	if _, ok := decodeNonce(e.Nonce); !ok {
		e.Nonce = encodeNonce(newNonce())
	}
	m, req, err := p.from(e.InternalHost).send(ctx, *e, e.ExternalPort, seconds(lifetime))
	if err != nil {
		return answer{}, err
	}
	a := answer{answered: true, epoch: m.Epoch}
	if err := p.failure(m, req, e.Mapping); err != nil {
		return a, err
	}
	a.port, a.lifetime, a.external = m.Map.Port, time.Duration(m.Lifetime)*time.Second, m.Map.IP
	return a, nil
}

// unmap sends the MAP of §15: lifetime 0, with the mapping's nonce, the
// only thing that lets the gateway delete it.
func (p *pcpMapper) unmap(ctx context.Context, e entry) (answer, error) {
	if _, ok := decodeNonce(e.Nonce); !ok {
		return answer{}, &gatewayError{what: fmt.Sprintf("the state file holds no nonce for it, and PCP deletes a mapping only with its nonce (RFC 6887 §15); "+
			"it lapses at %s, or remove it on the router", e.Expires.Format(time.RFC3339)), cause: []error{errLapse}}
	}
	m, req, err := p.from(e.InternalHost).send(ctx, e, e.GrantedPort, 0)
	if err != nil {
		return answer{}, err
	}
	a := answer{answered: true, epoch: m.Epoch}
	if m.Result == NoResources {
		// §15: deleting an absent mapping succeeds. miniupnpd 2.3.1
		// answers NO_RESOURCES instead, which on a delete can mean
		// nothing else.
		return a, nil
	}
	return a, p.failure(m, req, e.Mapping)
}

// send sends the MAP request for e and returns the response that answers
// it (§11.4), with the request.
func (p *pcpMapper) send(ctx context.Context, e entry, port uint16, lifetime uint32) (pcpMessage, pcpRequest, error) {
	req, err := p.mapRequest(e, port, lifetime)
	if err != nil {
		return pcpMessage{}, req, err
	}
	m, err := p.ask(ctx, req, req.Map.answeredBy)
	return m, req, err
}

// mapRequest is the MAP request (§11.1) for e, suggesting port. On IPv4
// it has no preference for the external address; an IPv6 pinhole
// suggests the internal address, since nothing is translated.
func (p *pcpMapper) mapRequest(e entry, port uint16, lifetime uint32) (pcpRequest, error) {
	proto, err := pcpProtocol(e.Protocol)
	if err != nil {
		return pcpRequest{}, err
	}
	if e.InternalPort == 0 {
		// §11.1: port 0 means "all ports", which portfwd never asks for.
		return pcpRequest{}, errors.New("PCP MAP needs an internal port")
	}
	nonce, _ := decodeNonce(e.Nonce)
	req := pcpRequest{Opcode: pcpOpMap, Lifetime: lifetime, Client: p.local,
		Map:        &pcpMap{Nonce: nonce, Protocol: proto, InternalPort: e.InternalPort, Port: port},
		ThirdParty: p.thirdParty(e.InternalHost)}
	if e.Family == forward.IPv6 {
		req.Map.IP = e.InternalHost.WithZone("")
	}
	return req, nil
}

// from is the mapper that asks about a mapping to host. A pinhole to one
// of this host's own IPv6 addresses (there may be several: stable,
// temporary, one per prefix) is asked from that address, with it as the
// client IP: the gateway opens the pinhole to the client IP (§11.1), and
// takes it only from a packet sent from it (§8.2). Any other host is asked
// for from the mapper's own address with THIRD_PARTY (§13.1), as on IPv4.
func (p *pcpMapper) from(host netip.Addr) *pcpMapper {
	if !p.local.Is6() || !host.Is6() || host.Is4In6() || host == p.local || !isLocalAddr(host) {
		return p
	}
	x := *p.x
	x.local = host
	return &pcpMapper{x: &x, local: host}
}

// thirdParty is the THIRD_PARTY address (§13.1) a mapping to host needs:
// zero when host is this one.
func (p *pcpMapper) thirdParty(host netip.Addr) netip.Addr {
	if host = host.Unmap(); host == p.local {
		return netip.Addr{}
	}
	return host
}

// ask sends req and waits for the response match accepts.
func (p *pcpMapper) ask(ctx context.Context, req pcpRequest, match func(pcpMessage) bool) (pcpMessage, error) {
	return roundTrip(ctx, p.x, req.marshal(), decodePCP, match)
}

// answeredBy reports whether m answers the MAP request q: same nonce,
// protocol and internal port (§11.4). An error response without the MAP
// payload cannot be checked and is taken as the answer.
func (q *pcpMap) answeredBy(m pcpMessage) bool {
	if m.Opcode != pcpOpMap {
		return false
	}
	if m.Map == nil {
		return m.Result != Success
	}
	return m.Map.Nonce == q.Nonce && m.Map.Protocol == q.Protocol && m.Map.InternalPort == q.InternalPort
}

// restarted is the rule of RFC 6887 §8.5, in integer seconds: the server
// lost its mappings (it rebooted, or its external address changed) when
// its epoch went back by more than a second, or when the time that passed
// on the server and on the client disagree by more than a sixteenth plus
// 2 s.
func (p *pcpMapper) restarted(prev uint32, prevAt time.Time, cur uint32, now time.Time) bool {
	if int64(cur)+1 < int64(prev) {
		return true
	}
	client := int64(now.Sub(prevAt) / time.Second)
	server := int64(cur) - int64(prev)
	return client+2 < server-server/16 || server+2 < client-client/16
}

// siblings is none: PCP tells mappings apart by their nonce, so a delete
// takes no other mapping along (§15).
func (p *pcpMapper) siblings([]entry, forward.Mapping) []entry { return nil }

// newNonce returns a random mapping nonce (§11.1, §11.2: unguessable, so
// that another host cannot take over the mapping).
func newNonce() [12]byte {
	var n [12]byte
	_, _ = rand.Read(n[:]) // crypto/rand.Read never fails (Go 1.24+)
	return n
}

// encodeNonce is a nonce as the records keep it, in hex.
func encodeNonce(n [12]byte) string { return hex.EncodeToString(n[:]) }

// decodeNonce reads a nonce from the records; false when there is none.
func decodeNonce(s string) ([12]byte, bool) {
	var n [12]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(n) {
		return n, false
	}
	copy(n[:], b)
	return n, true
}

// pcpMeaning is what each result code of §7.4 means for the user, and the
// sentinel it is for callers, where the code alone says it. A gateway that
// does not speak this version, or this opcode, counts as one that does not
// answer.
var pcpMeaning = map[ResultCode]struct {
	advice   string
	sentinel error
}{
	UnsuppVersion:         {"the gateway does not speak PCP version 2 (RFC 6887); use backend natpmp or upnp", forward.ErrNoGateway},
	UnsuppOpcode:          {"the gateway does not support this PCP operation; use backend natpmp or upnp", forward.ErrNoGateway},
	MalformedRequest:      {"the gateway could not parse portfwd's request; this is a bug in portfwd or the gateway, please report it", nil},
	MalformedOption:       {"the gateway could not parse portfwd's request; this is a bug in portfwd or the gateway, please report it", nil},
	NoResources:           {"the gateway is out of mappings; remove port forwards you no longer need on the router, or try again later", nil},
	UserExQuota:           {"the gateway is out of mappings for this host (quota exceeded); remove mappings this host no longer needs", nil},
	UnsuppProtocol:        {"the gateway cannot map this protocol", nil},
	CannotProvideExternal: {"the suggested external port is taken by another mapping (the gateway does not say whose); remove that mapping on the router or pick another external_port", nil},
	AddressMismatch:       {"", forward.ErrDoubleNAT},
	ExcessiveRemotePeers:  {"the gateway refuses more remote peers for this mapping", nil},
}

// failure is the error for m's result code, nil on SUCCESS. want is the
// mapping asked for, for a conflict.
func (p *pcpMapper) failure(m pcpMessage, req pcpRequest, want forward.Mapping) error {
	if m.Result == Success {
		return nil
	}
	op := "ANNOUNCE"
	if req.Opcode == pcpOpMap {
		op = "MAP"
	}
	e := &gatewayError{what: fmt.Sprintf("PCP %s failed with %s", op, m.Result.String()), cause: []error{m.Result}}
	meaning, known := pcpMeaning[m.Result]
	e.advice = meaning.advice
	if meaning.sentinel != nil {
		e.cause = append(e.cause, meaning.sentinel)
	}
	switch m.Result {
	case NotAuthorized, UnsuppOption:
		refused(e, req.ThirdParty)
	case AddressMismatch:
		e.advice = mismatchAdvice(req.Client)
	case CannotProvideExternal:
		e.cause = append(e.cause, &forward.ConflictError{Want: want})
	case NetworkFailure:
		e.wan = true // the backend looks at the external address
	default:
		if !known {
			e.advice = "the gateway answered a result code RFC 6887 does not define; try backend natpmp or upnp"
		}
	}
	return e
}

// refused explains NOT_AUTHORIZED and UNSUPP_OPTION. For a mapping to
// another host both are a refusal of third-party mappings: miniupnpd 2.3.1
// answers UNSUPP_OPTION to THIRD_PARTY when pcp_allow_thirdparty is off.
func refused(e *gatewayError, other netip.Addr) {
	how := "PCP third-party mappings"
	if e.cause[0] == UnsuppOption {
		how = "it rejects PCP's THIRD_PARTY option"
	}
	switch {
	case other.IsValid():
		e.advice = fmt.Sprintf("the gateway refuses mappings for other hosts (%s) such as %s; "+
			"enable them on the router (miniupnpd: pcp_allow_thirdparty=yes) or run portfwd on %s", how, other, other)
	case e.cause[0] == NotAuthorized:
		e.advice = "the gateway does not allow this mapping (its rules may forbid this port or this host); " +
			"pick a port the router allows, or forward it in the router's web page"
	default:
		e.advice = "the gateway does not support an option portfwd sent; please report it"
		return
	}
	e.cause = append(e.cause, forward.ErrNotAuthorized)
}

// mismatchAdvice explains ADDRESS_MISMATCH (§8.2): the server saw the
// request come from another address than its client IP field.
func mismatchAdvice(client netip.Addr) string {
	who := "this host's address"
	if client.IsValid() {
		who = "this host's address " + client.String()
	}
	return "the request reached the gateway from another address than " + who +
		": another NAT sits between this host and the gateway (double NAT); forward the port on the other router too, or run portfwd on a host on the gateway's own LAN"
}
