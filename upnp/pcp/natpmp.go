package pcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/portfwd/portfwd/forward"
)

// The NAT-PMP wire format, RFC 6886 §3. Numbers are big-endian; the
// external address travels as its four bytes.
const (
	natpmpVersion = 0   // §3: this is version 0
	natpmpReply   = 128 // §3: response opcodes are 128 + the request's

	natpmpOpExternal = 0 // §3.2: external address request
	natpmpOpMapUDP   = 1 // §3.3
	natpmpOpMapTCP   = 2 // §3.3

	natpmpHeaderLen   = 8  // §3.5: version, opcode, result code, epoch
	natpmpExternalLen = 12 // §3.2: the header and the external address
	natpmpMapLen      = 16 // §3.3: the header, two ports and a lifetime
)

// NATPMPResultCode is the result code of a NAT-PMP response (RFC 6886
// §3.5). As an error it is the code alone; the backend's errors say what it
// means and what to do, and unwrap to it.
type NATPMPResultCode uint16

// The result codes of RFC 6886 §3.5.
const (
	NATPMPSuccess            NATPMPResultCode = 0
	NATPMPUnsupportedVersion NATPMPResultCode = 1
	NATPMPNotAuthorized      NATPMPResultCode = 2 // e.g. mapping switched off by the user
	NATPMPNetworkFailure     NATPMPResultCode = 3 // e.g. no DHCP lease on the WAN side
	NATPMPOutOfResources     NATPMPResultCode = 4
	NATPMPUnsupportedOpcode  NATPMPResultCode = 5
)

// natpmpResultNames are the meanings §3.5 gives the result codes.
var natpmpResultNames = [...]string{"success", "unsupported version",
	"not authorized/refused", "network failure", "out of resources", "unsupported opcode"}

// String is the RFC's name for c, e.g. "not authorized/refused".
func (c NATPMPResultCode) String() string {
	if int(c) < len(natpmpResultNames) {
		return natpmpResultNames[c]
	}
	return fmt.Sprintf("undefined result code %d", uint16(c))
}

// Error is "NAT-PMP result code 2 (not authorized/refused)".
func (c NATPMPResultCode) Error() string {
	return fmt.Sprintf("NAT-PMP result code %d (%s)", uint16(c), c.String())
}

// natpmpResponse is a decoded NAT-PMP response.
type natpmpResponse struct {
	op     uint8 // the request's opcode: the response's without the reply bit
	result NATPMPResultCode
	epoch  uint32 // seconds since start of epoch (§3.6)
	short  bool   // a failure answered with the header only: no fields below
	// external is the external address (op 0, §3.2).
	external netip.Addr
	// internal and mapped are the ports, lifetime the seconds granted
	// (ops 1 and 2, §3.3).
	internal, mapped uint16
	lifetime         uint32
}

// natpmpExternalRequest is the request of §3.2.
func natpmpExternalRequest() []byte { return []byte{natpmpVersion, natpmpOpExternal} }

// natpmpMapRequest is the mapping request of §3.3; lifetime 0 deletes
// (§3.4).
func natpmpMapRequest(op uint8, internal, external uint16, lifetime uint32) []byte {
	b := []byte{natpmpVersion, op, 0, 0} // version, opcode, reserved
	b = binary.BigEndian.AppendUint16(b, internal)
	b = binary.BigEndian.AppendUint16(b, external)
	return binary.BigEndian.AppendUint32(b, lifetime)
}

// natpmpOp is the mapping opcode for p (§3.3).
func natpmpOp(p forward.Protocol) (uint8, error) {
	switch p {
	case forward.UDP:
		return natpmpOpMapUDP, nil
	case forward.TCP:
		return natpmpOpMapTCP, nil
	}
	return 0, fmt.Errorf("NAT-PMP cannot map protocol %q (want tcp or udp)", p)
}

// Why a datagram is not a usable NAT-PMP response; the exchange ignores it.
var (
	errNATPMPShort   = errors.New("NAT-PMP response too short")
	errNATPMPLength  = errors.New("NAT-PMP response of the wrong length")
	errNATPMPOp      = errors.New("NAT-PMP datagram is not a response to a known request")
	errNATPMPVersion = errors.New("datagram of another version that is not a refusal of version 0")
)

// decodeNATPMP parses one datagram from the server. A PCP server's refusal
// of version 0 (RFC 6887 §9) is an otherVersion error; any other datagram
// of another version is noise the exchange ignores.
func decodeNATPMP(b []byte) (natpmpResponse, error) {
	if len(b) < 2 {
		return natpmpResponse{}, errNATPMPShort
	}
	if b[0] != natpmpVersion {
		if isPCPUnsuppVersion(b) {
			return natpmpResponse{}, otherVersion(b[0])
		}
		return natpmpResponse{}, errNATPMPVersion
	}
	if len(b) < natpmpHeaderLen {
		return natpmpResponse{}, errNATPMPShort
	}
	r := natpmpResponse{op: b[1] &^ natpmpReply, result: NATPMPResultCode(binary.BigEndian.Uint16(b[2:])),
		epoch: binary.BigEndian.Uint32(b[4:])}
	if b[1]&natpmpReply == 0 && !(b[1] == natpmpOpExternal && r.result == NATPMPUnsupportedVersion) {
		// §3.5 draws the "Unsupported Version" answer with opcode 0, the
		// one reply without the reply bit; anything else is a request.
		return natpmpResponse{}, errNATPMPOp
	}
	return r, r.decodeBody(b)
}

// decodeBody reads the fields after the header. A success has exactly its
// opcode's length; a failure has that length (§3.5: other fields set
// appropriately) or only the header (§3.5's "Unsupported Version", and
// miniupnpd's "Unsupported opcode").
func (r *natpmpResponse) decodeBody(b []byte) error {
	want := natpmpMapLen
	switch r.op {
	case natpmpOpExternal:
		want = natpmpExternalLen
	case natpmpOpMapUDP, natpmpOpMapTCP:
	default:
		return errNATPMPOp
	}
	switch {
	case len(b) == natpmpHeaderLen && r.result != NATPMPSuccess:
		r.short = true
	case len(b) != want:
		return errNATPMPLength
	case r.op == natpmpOpExternal:
		r.external = netip.AddrFrom4([4]byte(b[8:12]))
	default:
		r.internal, r.mapped = binary.BigEndian.Uint16(b[8:]), binary.BigEndian.Uint16(b[10:])
		r.lifetime = binary.BigEndian.Uint32(b[12:])
	}
	return nil
}
