package pcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/portfwd/portfwd/forward"
)

// The Port Control Protocol wire format, RFC 6887. Every address field is
// 128 bits; IPv4 addresses travel IPv4-mapped (::ffff:a.b.c.d, §5).
const (
	serverPort    = 5351 // RFC 6886 §3.1, RFC 6887 §19.1: both listen on UDP 5351
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

// ResultCode is the result code of a PCP response (RFC 6887 §7.4). As an
// error it is the code alone; the backend's errors say what it means and
// what to do, and unwrap to it.
type ResultCode uint8

// The result codes of RFC 6887 §7.4.
const (
	Success               ResultCode = 0
	UnsuppVersion         ResultCode = 1
	NotAuthorized         ResultCode = 2
	MalformedRequest      ResultCode = 3
	UnsuppOpcode          ResultCode = 4
	UnsuppOption          ResultCode = 5
	MalformedOption       ResultCode = 6
	NetworkFailure        ResultCode = 7
	NoResources           ResultCode = 8
	UnsuppProtocol        ResultCode = 9
	UserExQuota           ResultCode = 10
	CannotProvideExternal ResultCode = 11
	AddressMismatch       ResultCode = 12
	ExcessiveRemotePeers  ResultCode = 13
)

// pcpResultNames are the names §7.4 gives the result codes.
var pcpResultNames = [...]string{
	"SUCCESS", "UNSUPP_VERSION", "NOT_AUTHORIZED", "MALFORMED_REQUEST",
	"UNSUPP_OPCODE", "UNSUPP_OPTION", "MALFORMED_OPTION", "NETWORK_FAILURE",
	"NO_RESOURCES", "UNSUPP_PROTOCOL", "USER_EX_QUOTA", "CANNOT_PROVIDE_EXTERNAL",
	"ADDRESS_MISMATCH", "EXCESSIVE_REMOTE_PEERS",
}

// String is the RFC's name for c, e.g. "NOT_AUTHORIZED".
func (c ResultCode) String() string {
	if int(c) < len(pcpResultNames) {
		return pcpResultNames[c]
	}
	return fmt.Sprintf("result code %d", uint8(c))
}

// Error is "PCP result NOT_AUTHORIZED".
func (c ResultCode) Error() string { return "PCP result " + c.String() }

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
	Opcode     uint8
	Result     ResultCode
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

// decodePCP parses one datagram from the server. An answer in another
// version is an otherVersion error (§9): NAT-PMP's (version 0, RFC 6886
// §3.5), or UNSUPP_VERSION in the version the server speaks.
func decodePCP(b []byte) (pcpMessage, error) {
	if len(b) > pcpMaxSize {
		return pcpMessage{}, errPCPOversized
	}
	if isNATPMPAnswer(b) {
		return pcpMessage{}, otherVersion(natpmpVersion)
	}
	if err := pcpCheckSize(b); err != nil {
		return pcpMessage{}, err
	}
	if b[1]&pcpResponse == 0 {
		return pcpMessage{}, errPCPNotResp
	}
	m := pcpMessage{
		Opcode:   b[1] &^ pcpResponse,
		Result:   ResultCode(b[3]),
		Lifetime: binary.BigEndian.Uint32(b[4:]),
		Epoch:    binary.BigEndian.Uint32(b[8:]),
	}
	if b[0] != pcpVersion {
		// §9: a server answers an unsupported version with UNSUPP_VERSION
		// in its own version; anything else from another version is noise.
		if m.Result != UnsuppVersion {
			return pcpMessage{}, errPCPVersion
		}
		return pcpMessage{}, otherVersion(b[0])
	}
	return m, m.decodeBody(b[pcpHeaderSize:])
}

// isNATPMPAnswer reports whether b is a NAT-PMP server's answer: a
// response RFC 6886 §3 can parse, whole (its §3.5 "Unsupported Version"
// among them). A datagram of version 0 that it cannot parse is noise, not
// a gateway that speaks NAT-PMP.
func isNATPMPAnswer(b []byte) bool {
	if len(b) == 0 || b[0] != natpmpVersion {
		return false
	}
	_, err := decodeNATPMP(b)
	return err == nil
}

// isPCPUnsuppVersion reports whether b is how a PCP server refuses a
// version it does not speak (§9): a whole response header (§7.2) in its
// own version, with UNSUPP_VERSION. NAT-PMP's decoder asks it, so that
// noise is not taken for a gateway that speaks PCP.
func isPCPUnsuppVersion(b []byte) bool {
	return pcpCheckSize(b) == nil && b[0] != natpmpVersion && b[1]&pcpResponse != 0 && ResultCode(b[3]) == UnsuppVersion
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
			if m.Result == Success || len(body) > 0 {
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
		if code == pcpOptThirdParty {
			if n != pcpThirdPartyLen {
				return errPCPOption
			}
			m.ThirdParty = pcpAddrFrom(b[4:])
		}
		b = b[4+padded:]
	}
	return nil
}

// otherVersion is an answer from the server in another version of the
// protocol family than the one asked (RFC 6887 §9): the gateway does not
// speak it. The exchange turns it into an error for the user.
type otherVersion uint8

// Error says which version answered.
func (v otherVersion) Error() string {
	return fmt.Sprintf("an answer in protocol version %d", uint8(v))
}
