package pcp

import (
	"encoding/binary"
	"maps"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// fakeGateway is a NAT-PMP and PCP server on a loopback UDP port, written
// from the RFCs' byte layouts and behaving like miniupnpd 2.3.1 where the
// RFCs leave room: one mapping table keyed by protocol and external port
// for both protocols; a taken port makes it grant the next free one; a
// request for the asker's own mapping on a port refreshes it; a NAT-PMP
// delete removes every NAT-PMP mapping of the host's internal port; a PCP
// delete of an absent mapping answers NO_RESOURCES; a PCP response is the
// request turned round, options and all. Its epoch counts seconds of a
// fake clock since boot. It never touches anything but its own socket.
type fakeGateway struct {
	conn  *net.UDPConn
	clock *fakeClock

	mu       sync.Mutex
	boot     time.Time
	ext      netip.Addr // the external address it reports
	maxLife  uint32     // the longest lifetime granted, in seconds; 0: any
	held     map[forward.Key]bool
	table    map[forward.Key]fakeMapping
	requests [][]byte

	silent    bool // drops every request
	pcpOff    bool // answers PCP as a NAT-PMP-only server (RFC 6886 §3.5)
	natpmpOff bool // answers NAT-PMP as a PCP-only server (RFC 6887 §9)
	// rfc6886 makes NAT-PMP keep one mapping per host and internal port,
	// answering a request for a mapped internal port with the mapping it
	// has (RFC 6886 §3.3). miniupnpd 2.3.1 does not: it keeps several.
	rfc6886 bool
	// Forced result codes: NAT-PMP mapping and external address requests,
	// PCP MAP, and PCP MAP with THIRD_PARTY.
	natpmpCode, natpmpExtCode NATPMPResultCode
	pcpCode, pcpThirdParty    ResultCode
}

// fakeMapping is one entry of the table; by is "natpmp", "pcp", or empty
// for another client's.
type fakeMapping struct {
	host     netip.Addr
	internal uint16
	nonce    [12]byte
	by       string
}

// fakeClock is the clock of the gateway and of the backends under test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var loopback = netip.MustParseAddr("127.0.0.1")

func newFakeGateway(t *testing.T) *fakeGateway {
	t.Helper()
	return newFakeGatewayAt(t, loopback)
}

// newFakeGatewayAt is a fake gateway listening on addr: on ::1 it is the
// PCP server of a gateway's IPv6 address, which grants pinholes on the
// internal address.
func newFakeGatewayAt(t *testing.T, addr netip.Addr) *fakeGateway {
	t.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	f := &fakeGateway{conn: conn, clock: clock, boot: clock.Now().Add(-time.Hour),
		ext: netip.MustParseAddr("50.60.70.1"), held: map[forward.Key]bool{}, table: map[forward.Key]fakeMapping{}}
	t.Cleanup(func() { conn.Close() })
	go serveUDP(conn, f.serve)
	return f
}

// options are the Options that point a backend at f.
func (f *fakeGateway) options() Options {
	return Options{Now: f.clock.Now, port: f.conn.LocalAddr().(*net.UDPAddr).AddrPort().Port()}
}

// serveUDP answers every datagram on conn with what handle returns, until
// conn is closed.
func serveUDP(conn *net.UDPConn, handle func(req []byte, from netip.Addr) [][]byte) {
	buf := make([]byte, 2048)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		for _, resp := range handle(append([]byte{}, buf[:n]...), from.Addr().Unmap()) {
			_, _ = conn.WriteToUDPAddrPort(resp, from)
		}
	}
}

func (f *fakeGateway) serve(req []byte, from netip.Addr) [][]byte {
	if resp := f.handle(req, from); resp != nil {
		return [][]byte{resp}
	}
	return nil
}

func (f *fakeGateway) handle(req []byte, from netip.Addr) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, req)
	switch {
	case f.silent || len(req) < 2:
		return nil
	case req[0] == natpmpVersion:
		return f.natpmp(req, from)
	}
	return f.pcp(req, from)
}

func (f *fakeGateway) epoch() uint32 { return uint32(f.clock.Now().Sub(f.boot) / time.Second) }

func (f *fakeGateway) life(asked uint32) uint32 {
	if f.maxLife != 0 {
		return min(asked, f.maxLife)
	}
	return asked
}

// natpmp answers a NAT-PMP request (RFC 6886 §3.2 to §3.5).
func (f *fakeGateway) natpmp(req []byte, from netip.Addr) []byte {
	if f.natpmpOff {
		return f.pcpHeader(req[1], UnsuppVersion) // a PCP-only server
	}
	resp := binary.BigEndian.AppendUint32([]byte{0, req[1] | natpmpReply, 0, 0}, f.epoch())
	switch {
	case req[1] == natpmpOpExternal:
		return f.natpmpExternal(resp)
	case (req[1] == natpmpOpMapUDP || req[1] == natpmpOpMapTCP) && len(req) >= 12:
		proto := map[byte]forward.Protocol{natpmpOpMapUDP: forward.UDP, natpmpOpMapTCP: forward.TCP}[req[1]]
		internal := binary.BigEndian.Uint16(req[4:])
		code, port, life := f.natpmpMap(proto, from, internal, binary.BigEndian.Uint16(req[6:]), binary.BigEndian.Uint32(req[8:]))
		binary.BigEndian.PutUint16(resp[2:], uint16(code))
		resp = binary.BigEndian.AppendUint16(resp, internal)
		resp = binary.BigEndian.AppendUint16(resp, port)
		return binary.BigEndian.AppendUint32(resp, life)
	}
	binary.BigEndian.PutUint16(resp[2:], uint16(NATPMPUnsupportedOpcode))
	return resp
}

func (f *fakeGateway) natpmpExternal(resp []byte) []byte {
	if f.natpmpExtCode != NATPMPSuccess {
		binary.BigEndian.PutUint16(resp[2:], uint16(f.natpmpExtCode))
		return append(resp, 0, 0, 0, 0)
	}
	ext := f.ext.As4()
	return append(resp, ext[:]...)
}

// natpmpMap makes, renews or (lifetime 0) deletes a NAT-PMP mapping.
func (f *fakeGateway) natpmpMap(p forward.Protocol, host netip.Addr, internal, suggested uint16, lifetime uint32) (NATPMPResultCode, uint16, uint32) {
	if f.natpmpCode != NATPMPSuccess {
		return f.natpmpCode, 0, 0
	}
	if lifetime == 0 { // §3.4, as miniupnpd: every mapping of the internal port goes
		maps.DeleteFunc(f.table, func(k forward.Key, m fakeMapping) bool {
			return m.by == "natpmp" && m.host == host && k.Protocol == p && (internal == 0 || m.internal == internal)
		})
		return NATPMPSuccess, 0, 0
	}
	if f.rfc6886 {
		for k, m := range f.table {
			if m.by == "natpmp" && m.host == host && k.Protocol == p && m.internal == internal {
				return NATPMPSuccess, k.ExternalPort, f.life(lifetime)
			}
		}
	}
	k := f.free(forward.Key{Protocol: p, ExternalPort: cmpOr(suggested, internal)}, host, internal)
	f.table[k] = fakeMapping{host: host, internal: internal, by: "natpmp"}
	return NATPMPSuccess, k.ExternalPort, f.life(lifetime)
}

// free is the first port from k's on that another device does not hold
// and no one else maps.
func (f *fakeGateway) free(k forward.Key, host netip.Addr, internal uint16) forward.Key {
	for {
		m, taken := f.table[k]
		if !f.held[k] && (!taken || (m.host == host && m.internal == internal)) {
			return k
		}
		k.ExternalPort++
	}
}

func cmpOr(a, b uint16) uint16 {
	if a != 0 {
		return a
	}
	return b
}

// pcpHeader is a header-only PCP response (RFC 6887 §7.2).
func (f *fakeGateway) pcpHeader(op byte, code ResultCode) []byte {
	resp := make([]byte, pcpHeaderSize)
	resp[0], resp[1], resp[3] = pcpVersion, op|pcpResponse, byte(code)
	binary.BigEndian.PutUint32(resp[8:], f.epoch())
	return resp
}

// pcp answers a PCP request (RFC 6887 §7, §11, §14.1).
func (f *fakeGateway) pcp(req []byte, from netip.Addr) []byte {
	switch {
	case f.pcpOff: // a NAT-PMP-only server: RFC 6886 §3.5
		return binary.BigEndian.AppendUint32([]byte{0, req[1] | natpmpReply, 0, byte(NATPMPUnsupportedVersion)}, f.epoch())
	case len(req) < pcpHeaderSize || len(req)%4 != 0 || req[1]&pcpResponse != 0:
		return nil
	case req[0] != pcpVersion:
		return f.pcpHeader(req[1], UnsuppVersion)
	case pcpAddrFrom(req[8:]) != from:
		return f.pcpHeader(req[1], AddressMismatch) // §8.2: a NAT between
	}
	resp := append([]byte{}, req...) // miniupnpd answers in the request's buffer
	code, lifetime := Success, uint32(0)
	switch {
	case req[1] == pcpOpMap && len(req) >= pcpHeaderSize+pcpMapSize:
		code, lifetime = f.pcpMap(resp, from)
	case req[1] != pcpOpAnnounce:
		code = UnsuppOpcode
	}
	copy(resp, f.pcpHeader(req[1], code))
	binary.BigEndian.PutUint32(resp[4:], lifetime)
	return resp
}

// pcpMap serves the MAP payload in resp, writing the assigned port and
// address into it.
func (f *fakeGateway) pcpMap(resp []byte, from netip.Addr) (ResultCode, uint32) {
	body := resp[pcpHeaderSize:]
	req := decodePCPMap(body)
	host, code := from, f.pcpCode
	if third := fakeThirdParty(body[pcpMapSize:]); third.IsValid() {
		host, code = third, max(code, f.pcpThirdParty)
	}
	if code != Success {
		return code, 0
	}
	p := map[uint8]forward.Protocol{pcpProtoTCP: forward.TCP, pcpProtoUDP: forward.UDP}[req.Protocol]
	lifetime := binary.BigEndian.Uint32(resp[4:])
	if lifetime == 0 {
		return f.pcpDelete(p, host, req), 0
	}
	k := f.free(forward.Key{Protocol: p, ExternalPort: cmpOr(req.Port, req.InternalPort)}, host, req.InternalPort)
	f.table[k] = fakeMapping{host: host, internal: req.InternalPort, nonce: req.Nonce, by: "pcp"}
	binary.BigEndian.PutUint16(body[18:], k.ExternalPort)
	ext := pcpAddr16(f.ext)
	if host.Is6() && !f.ext.Is6() { // a pinhole: nothing is translated
		ext = host.As16()
	}
	copy(body[20:], ext[:])
	return Success, f.life(lifetime)
}

// pcpDelete deletes the mapping of req's nonce (§15). miniupnpd answers
// NOT_AUTHORIZED for another nonce, and NO_RESOURCES when there is none.
func (f *fakeGateway) pcpDelete(p forward.Protocol, host netip.Addr, req *pcpMap) ResultCode {
	code := NoResources
	for k, m := range f.table {
		if m.by != "pcp" || m.host != host || k.Protocol != p || m.internal != req.InternalPort {
			continue
		}
		if m.nonce != req.Nonce {
			code = NotAuthorized
			continue
		}
		delete(f.table, k)
		return Success
	}
	return code
}

// fakeThirdParty finds the THIRD_PARTY option (§13.1) among options.
func fakeThirdParty(options []byte) netip.Addr {
	for len(options) >= 4 {
		n := int(binary.BigEndian.Uint16(options[2:]))
		if options[0] == pcpOptThirdParty && n == 16 && len(options) >= 20 {
			return pcpAddrFrom(options[4:])
		}
		options = options[min(len(options), 4+(n+3)&^3):]
	}
	return netip.Addr{}
}

// reboot loses every mapping and restarts the epoch.
func (f *fakeGateway) reboot() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.boot = f.clock.Now()
	clear(f.table)
}

func (f *fakeGateway) has(k forward.Key) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.table[k]
	return ok
}

// mapping is the table's entry on k.
func (f *fakeGateway) mapping(k forward.Key) (fakeMapping, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.table[k]
	return m, ok
}

// put installs another client's mapping, or a port another device holds.
func (f *fakeGateway) put(m forward.Mapping) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.table[m.Key] = fakeMapping{host: m.InternalHost, internal: m.InternalPort}
}

// set changes the gateway's behaviour under its lock.
func (f *fakeGateway) set(change func(f *fakeGateway)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

func (f *fakeGateway) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

// last is the i-th request from the end: last(1) is the latest.
func (f *fakeGateway) last(i int) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[len(f.requests)-i]
}

// natpmpRequest is a NAT-PMP mapping request as the gateway read it.
type natpmpRequest struct {
	op                 uint8
	internal, external uint16
	lifetime           uint32
}

func (f *fakeGateway) lastNATPMP() natpmpRequest {
	b := f.last(1)
	if len(b) < 12 {
		return natpmpRequest{op: b[1]}
	}
	return natpmpRequest{b[1], binary.BigEndian.Uint16(b[4:]), binary.BigEndian.Uint16(b[6:]), binary.BigEndian.Uint32(b[8:])}
}

// pcpMapRequest is a PCP MAP request as the gateway read it.
type pcpMapRequest struct {
	lifetime   uint32
	nonce      [12]byte
	internal   uint16
	suggested  uint16
	thirdParty netip.Addr
}

func (f *fakeGateway) lastMAP(i int) pcpMapRequest {
	b := f.last(i)
	m := decodePCPMap(b[pcpHeaderSize:])
	return pcpMapRequest{binary.BigEndian.Uint32(b[4:]), m.Nonce, m.InternalPort, m.Port,
		fakeThirdParty(b[pcpHeaderSize+pcpMapSize:])}
}
