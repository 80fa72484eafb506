package upnp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// The Port Control Protocol wire format, RFC 6887. Every address field is
// 128 bits; IPv4 addresses travel IPv4-mapped (::ffff:a.b.c.d, §5).

// PCP constants from RFC 6887.
const (
	pcpPort       = 5351 // §19.1: the server listens on UDP 5351
	pcpVersion    = 2    // §9: RFC 6887 is version 2
	pcpMaxSize    = 1100 // §7: no PCP message is larger
	pcpHeaderSize = 24   // §7.1 and §7.2: both common headers are 24 bytes
	pcpMapSize    = 36   // §11.1: the MAP opcode payload
	pcpResponse   = 0x80 // §7.1: the R bit, set in responses

	pcpOpAnnounce = 0 // §14.1
	pcpOpMap      = 1 // §11

	pcpOptThirdParty = 1  // §13.1
	pcpThirdPartyLen = 16 // §13.1: one 128-bit address

	pcpProtoTCP = 6  // §11.1: IANA protocol numbers
	pcpProtoUDP = 17 //
)

// PCPResultCode is the result code of a PCP response (RFC 6887 §7.4).
type PCPResultCode uint8

// The result codes of RFC 6887 §7.4.
const (
	PCPSuccess               PCPResultCode = 0
	PCPUnsuppVersion         PCPResultCode = 1
	PCPNotAuthorized         PCPResultCode = 2
	PCPMalformedRequest      PCPResultCode = 3
	PCPUnsuppOpcode          PCPResultCode = 4
	PCPUnsuppOption          PCPResultCode = 5
	PCPMalformedOption       PCPResultCode = 6
	PCPNetworkFailure        PCPResultCode = 7
	PCPNoResources           PCPResultCode = 8
	PCPUnsuppProtocol        PCPResultCode = 9
	PCPUserExQuota           PCPResultCode = 10
	PCPCannotProvideExternal PCPResultCode = 11
	PCPAddressMismatch       PCPResultCode = 12
	PCPExcessiveRemotePeers  PCPResultCode = 13
)

var pcpResultNames = [...]string{
	"SUCCESS", "UNSUPP_VERSION", "NOT_AUTHORIZED", "MALFORMED_REQUEST",
	"UNSUPP_OPCODE", "UNSUPP_OPTION", "MALFORMED_OPTION", "NETWORK_FAILURE",
	"NO_RESOURCES", "UNSUPP_PROTOCOL", "USER_EX_QUOTA", "CANNOT_PROVIDE_EXTERNAL",
	"ADDRESS_MISMATCH", "EXCESSIVE_REMOTE_PEERS",
}

// String is the RFC's name for c, e.g. "NOT_AUTHORIZED".
func (c PCPResultCode) String() string {
	if int(c) < len(pcpResultNames) {
		return pcpResultNames[c]
	}
	return fmt.Sprintf("result code %d", uint8(c))
}

// pcpMap is the MAP opcode payload of a request or response (§11.1). In a
// request Port and IP are the suggested external port and address; in a
// response, the assigned ones.
type pcpMap struct {
	Nonce        [12]byte
	Protocol     uint8
	InternalPort uint16
	Port         uint16
	IP           netip.Addr
}

// pcpRequest is a request: the common header (§7.1), an optional MAP
// payload and an optional THIRD_PARTY option.
type pcpRequest struct {
	Opcode     uint8
	Lifetime   uint32
	Client     netip.Addr
	Map        *pcpMap    // nil for ANNOUNCE
	ThirdParty netip.Addr // zero: no THIRD_PARTY option
}

// pcpMessage is a decoded response: the common header (§7.2), the MAP
// payload when there is one, and the THIRD_PARTY option when present.
type pcpMessage struct {
	Version    uint8
	Opcode     uint8
	Result     PCPResultCode
	Lifetime   uint32
	Epoch      uint32
	Map        *pcpMap // nil when not MAP, or an error response without payload
	ThirdParty netip.Addr
}

// pcpAddr16 is a as the 128-bit field of §5: IPv4 becomes IPv4-mapped. The
// zero Addr becomes ::ffff:0.0.0.0, the IPv4 "no preference" of §11.1.
func pcpAddr16(a netip.Addr) [16]byte {
	if !a.IsValid() {
		a = netip.IPv4Unspecified()
	}
	return a.As16()
}

// pcpAddrFrom reads a 128-bit address field, unmapping IPv4 (§5).
func pcpAddrFrom(b []byte) netip.Addr {
	return netip.AddrFrom16([16]byte(b[:16])).Unmap()
}

// pcpLifetime converts d to the seconds of the lifetime fields, rounding up
// so that a sub-second lifetime is not a delete (§15: 0 deletes).
func pcpLifetime(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	s := (d + time.Second - 1) / time.Second
	return uint32(min(s, 1<<32-1))
}

// pcpProtocol is the IANA protocol number of p (§11.1).
func pcpProtocol(p forward.Protocol) (uint8, error) {
	switch p {
	case forward.TCP:
		return pcpProtoTCP, nil
	case forward.UDP:
		return pcpProtoUDP, nil
	}
	return 0, fmt.Errorf("PCP cannot map protocol %q (want tcp or udp)", p)
}

// marshal encodes r: header (§7.1), opcode payload (§11.1), options (§7.3).
func (r pcpRequest) marshal() []byte {
	b := make([]byte, pcpHeaderSize, pcpHeaderSize+pcpMapSize+4+pcpThirdPartyLen)
	b[0] = pcpVersion
	b[1] = r.Opcode &^ pcpResponse // R bit 0: a request
	binary.BigEndian.PutUint32(b[4:], r.Lifetime)
	client := pcpAddr16(r.Client)
	copy(b[8:], client[:])
	if r.Map != nil {
		b = r.Map.append(b)
	}
	if r.ThirdParty.IsValid() {
		b = pcpAppendOption(b, pcpOptThirdParty, pcpAddr16(r.ThirdParty))
	}
	return b
}

// append adds the MAP payload of §11.1 to b.
func (m *pcpMap) append(b []byte) []byte {
	b = append(b, m.Nonce[:]...)
	b = append(b, m.Protocol, 0, 0, 0) // protocol, 24 reserved bits
	b = binary.BigEndian.AppendUint16(b, m.InternalPort)
	b = binary.BigEndian.AppendUint16(b, m.Port)
	ip := pcpAddr16(m.IP)
	return append(b, ip[:]...)
}

// pcpAppendOption adds one option (§7.3): code, reserved, length, data. The
// 16-byte data needs no padding.
func pcpAppendOption(b []byte, code uint8, data [16]byte) []byte {
	b = append(b, code, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data[:]...)
}

// Why a datagram is not a usable PCP response. The exchange ignores such
// datagrams (§8.3: a client drops what it cannot parse).
var (
	errPCPTruncated = errors.New("PCP response truncated")
	errPCPOversized = errors.New("PCP response larger than 1100 bytes")
	errPCPNotWords  = errors.New("PCP response length not a multiple of 4")
	errPCPNotResp   = errors.New("PCP message is a request (R bit unset)")
	errPCPVersion   = errors.New("PCP response of an unknown version")
	errPCPOption    = errors.New("PCP response with a malformed option")
)

// decodePCPResponse parses one datagram from the server. A NAT-PMP answer
// (version 0, RFC 6886 §3.5) or a response of another PCP version comes
// back as a message with that Version and Result UNSUPP_VERSION (§9).
func decodePCPResponse(b []byte) (pcpMessage, error) {
	if len(b) > pcpMaxSize {
		return pcpMessage{}, errPCPOversized
	}
	if len(b) >= 4 && b[0] == 0 && b[1]&pcpResponse != 0 {
		// NAT-PMP: version 0, opcode 128+op, 16-bit result code.
		return pcpMessage{Opcode: b[1] &^ pcpResponse, Result: PCPUnsuppVersion}, nil
	}
	if err := pcpCheckSize(b); err != nil {
		return pcpMessage{}, err
	}
	if b[1]&pcpResponse == 0 {
		return pcpMessage{}, errPCPNotResp
	}
	m := pcpMessage{
		Version:  b[0],
		Opcode:   b[1] &^ pcpResponse,
		Result:   PCPResultCode(b[3]),
		Lifetime: binary.BigEndian.Uint32(b[4:]),
		Epoch:    binary.BigEndian.Uint32(b[8:]),
	}
	if m.Version != pcpVersion {
		// §9: a server answers an unsupported version with UNSUPP_VERSION
		// in its own version; anything else from another version is noise.
		if m.Result != PCPUnsuppVersion {
			return pcpMessage{}, errPCPVersion
		}
		return m, nil
	}
	return m, m.decodeBody(b[pcpHeaderSize:])
}

// pcpCheckSize applies §7: at least a header, at most 1100 bytes, whole
// 32-bit words.
func pcpCheckSize(b []byte) error {
	switch {
	case len(b) < pcpHeaderSize:
		return errPCPTruncated
	case len(b) > pcpMaxSize:
		return errPCPOversized
	case len(b)%4 != 0:
		return errPCPNotWords
	}
	return nil
}

// decodeBody reads the MAP payload and the options after the header.
func (m *pcpMessage) decodeBody(body []byte) error {
	if m.Opcode == pcpOpMap {
		if len(body) < pcpMapSize {
			// §7.2: an error response may carry only the header.
			if m.Result == PCPSuccess || len(body) > 0 {
				return errPCPTruncated
			}
			return nil
		}
		m.Map = decodePCPMap(body)
		body = body[pcpMapSize:]
	}
	return m.decodeOptions(body)
}

// decodePCPMap reads the 36-byte MAP payload of §11.1.
func decodePCPMap(b []byte) *pcpMap {
	m := &pcpMap{
		Protocol:     b[12],
		InternalPort: binary.BigEndian.Uint16(b[16:]),
		Port:         binary.BigEndian.Uint16(b[18:]),
		IP:           pcpAddrFrom(b[20:]),
	}
	copy(m.Nonce[:], b[:12])
	return m
}

// decodeOptions walks the options of §7.3. Each length is honoured and
// padded to 4 bytes; THIRD_PARTY (§13.1) is kept. Unknown options are
// skipped, mandatory ones too: §7.3's "reject unknown mandatory options"
// is the server's duty; a client has nothing to reject.
func (m *pcpMessage) decodeOptions(b []byte) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return errPCPOption
		}
		code, n := b[0], int(binary.BigEndian.Uint16(b[2:]))
		padded := (n + 3) &^ 3
		if padded > len(b)-4 {
			return errPCPOption
		}
		data := b[4 : 4+n]
		if code == pcpOptThirdParty {
			if n != pcpThirdPartyLen {
				return errPCPOption
			}
			m.ThirdParty = pcpAddrFrom(data)
		}
		b = b[4+padded:]
	}
	return nil
}

// ErrPCPUnsupported: the gateway does not speak PCP version 2 (it answers
// NAT-PMP, an older PCP draft, or not at all). A caller falls back to
// NAT-PMP or UPnP.
var ErrPCPUnsupported = errors.New("gateway does not speak PCP")

// PCPError is a PCP response with a result code other than SUCCESS (RFC
// 6887 §7.4). It unwraps to the forward sentinel a caller branches on, when
// one applies.
type PCPError struct {
	Code   PCPResultCode
	Opcode uint8 // the request's opcode: 0 ANNOUNCE, 1 MAP
	// Version is the version the server answered in: 2, or 0 for NAT-PMP
	// and 1 for the PCP draft, with Code UNSUPP_VERSION (§9).
	Version uint8
	// Client is the client IP the request carried; ThirdParty the host a
	// THIRD_PARTY option asked for (zero when none). They make the message
	// concrete.
	Client, ThirdParty netip.Addr
}

// Error says what the code means and what to do.
func (e *PCPError) Error() string {
	op := "ANNOUNCE"
	if e.Opcode == pcpOpMap {
		op = "MAP"
	}
	return fmt.Sprintf("PCP %s failed with %s: %s", op, e.Code, e.advice())
}

// advice explains e.Code in plain words (§7.4) and says what to do.
func (e *PCPError) advice() string {
	switch e.Code {
	case PCPUnsuppVersion:
		return e.versionAdvice()
	case PCPNotAuthorized:
		return e.notAuthorizedAdvice()
	case PCPMalformedRequest, PCPMalformedOption:
		return "the gateway could not parse portfwd's request; this is a bug in portfwd or the gateway, please report it"
	case PCPUnsuppOpcode:
		return "the gateway does not support this PCP operation; use NAT-PMP or UPnP instead"
	case PCPUnsuppOption:
		return e.unsuppOptionAdvice()
	case PCPNetworkFailure:
		return "the gateway cannot create mappings right now (is its WAN connection up?); try again later"
	case PCPNoResources:
		return "the gateway is out of mappings; remove port forwards you no longer need on the router, or try again later"
	case PCPUserExQuota:
		return "the gateway is out of mappings for this host (quota exceeded); remove mappings this host no longer needs"
	case PCPUnsuppProtocol:
		return "the gateway cannot map this protocol"
	case PCPCannotProvideExternal:
		return "the suggested external port is taken by another mapping (the gateway does not say whose); remove that mapping on the router or pick another external_port"
	case PCPAddressMismatch:
		return e.mismatchAdvice()
	case PCPExcessiveRemotePeers:
		return "the gateway refuses more remote peers for this mapping"
	}
	return "the gateway answered a result code RFC 6887 does not define; try NAT-PMP or UPnP"
}

func (e *PCPError) versionAdvice() string {
	if e.Version == 0 {
		return "the gateway speaks NAT-PMP only, not PCP; use NAT-PMP"
	}
	return fmt.Sprintf("the gateway speaks PCP version %d, not version 2 (RFC 6887); use NAT-PMP or UPnP", e.Version)
}

func (e *PCPError) notAuthorizedAdvice() string {
	if e.ThirdParty.IsValid() {
		return fmt.Sprintf("the gateway refuses mappings for other hosts (PCP third-party mappings) such as %s; "+
			"enable them on the router (miniupnpd: pcp_allow_thirdparty=yes) or run portfwd on %s", e.ThirdParty, e.ThirdParty)
	}
	return "the gateway does not allow this mapping (its rules may forbid this port or this host); " +
		"pick a port the router allows, or forward it in the router's web page"
}

func (e *PCPError) unsuppOptionAdvice() string {
	if e.ThirdParty.IsValid() {
		// miniupnpd 2.3.1 answers so when pcp_allow_thirdparty is off.
		return fmt.Sprintf("the gateway refuses mappings for other hosts (it rejects PCP's THIRD_PARTY option) such as %s; "+
			"enable them on the router (miniupnpd: pcp_allow_thirdparty=yes) or run portfwd on %s", e.ThirdParty, e.ThirdParty)
	}
	return "the gateway does not support an option portfwd sent; please report it"
}

func (e *PCPError) mismatchAdvice() string {
	client := "this host's address"
	if e.Client.IsValid() {
		client = "this host's address " + e.Client.String()
	}
	return "the request reached the gateway from another address than " + client +
		": another NAT sits between this host and the gateway (double NAT); forward the port on the other router too, or run portfwd on a host on the gateway's own LAN"
}

// Unwrap returns the forward sentinel for e.Code, or nil: NOT_AUTHORIZED is
// forward.ErrNotAuthorized, ADDRESS_MISMATCH forward.ErrDoubleNAT (§8.2:
// the server saw another source address than the client IP field),
// CANNOT_PROVIDE_EXTERNAL forward.ErrConflict.
func (e *PCPError) Unwrap() error {
	switch {
	case e.Code == PCPNotAuthorized:
		return forward.ErrNotAuthorized
	case e.Code == PCPUnsuppOption && e.ThirdParty.IsValid():
		return forward.ErrNotAuthorized
	case e.Code == PCPAddressMismatch:
		return forward.ErrDoubleNAT
	case e.Code == PCPCannotProvideExternal:
		return forward.ErrConflict
	}
	return nil
}

// Is makes errors.Is(err, ErrPCPUnsupported) true when the gateway does not
// speak this PCP (UNSUPP_VERSION, UNSUPP_OPCODE).
func (e *PCPError) Is(target error) bool {
	return target == ErrPCPUnsupported && (e.Code == PCPUnsuppVersion || e.Code == PCPUnsuppOpcode)
}

// NATPMPOnly reports whether the gateway answered in NAT-PMP (version 0).
func (e *PCPError) NATPMPOnly() bool { return e.Code == PCPUnsuppVersion && e.Version == 0 }
