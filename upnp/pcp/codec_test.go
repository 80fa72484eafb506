package pcp

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

var testNonce = [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}

// mapRequest25565 is RFC 6887 §7.1 + §11.1 for TCP 25565, lifetime 3600,
// client 192.168.77.10, written out by hand.
const mapRequest25565 = `
	02 01 0000                          // version 2, R=0 opcode MAP, reserved
	00000e10                            // requested lifetime 3600
	00000000 00000000 0000ffff c0a84d0a // client ::ffff:192.168.77.10
	01020304 05060708 090a0b0c          // mapping nonce
	06 000000                           // protocol TCP, reserved
	63dd 63dd                           // internal port 25565, suggested external port 25565
	00000000 00000000 0000ffff 00000000 // suggested external IP ::ffff:0.0.0.0
`

// thirdParty77_11 is the THIRD_PARTY option of §13.1 for 192.168.77.11.
const thirdParty77_11 = `
	01 00 0010                          // option THIRD_PARTY, reserved, length 16
	00000000 00000000 0000ffff c0a84d0b // internal IP ::ffff:192.168.77.11
`

var lanHost = netip.MustParseAddr("192.168.77.10")

func testMapEntry(host netip.Addr) entry {
	return entry{Mapping: forward.Mapping{Key: key(forward.TCP, 25565), InternalHost: host, InternalPort: 25565},
		Nonce: encodeNonce(testNonce)}
}

func TestPCPMarshalMap(t *testing.T) {
	p := &pcpMapper{local: lanHost}
	for _, tc := range []struct {
		name   string
		host   netip.Addr
		layout string
	}{
		{"plain", lanHost, mapRequest25565},
		{"third party", netip.MustParseAddr("192.168.77.11"), mapRequest25565 + thirdParty77_11},
	} {
		req, err := p.mapRequest(testMapEntry(tc.host), 25565, seconds(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := req.marshal(), unhex(t, tc.layout); !bytes.Equal(got, want) {
			t.Errorf("%s: MAP request\n got %x\nwant %x", tc.name, got, want)
		}
	}
}

func TestPCPMarshalAnnounceAndDelete(t *testing.T) {
	announce := pcpRequest{Opcode: pcpOpAnnounce, Client: lanHost}.marshal()
	if want := unhex(t, `02 00 0000  00000000  00000000 00000000 0000ffff c0a84d0a`); !bytes.Equal(announce, want) {
		t.Errorf("ANNOUNCE\n got %x\nwant %x", announce, want)
	}
	e := testMapEntry(lanHost)
	e.Protocol = forward.UDP
	req, err := (&pcpMapper{local: lanHost}).mapRequest(e, 41500, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := req.marshal()
	if !bytes.Equal(got[4:8], []byte{0, 0, 0, 0}) || got[36] != pcpProtoUDP || !bytes.Equal(got[42:44], unhex(t, "a21c")) ||
		[12]byte(got[24:36]) != testNonce {
		t.Errorf("UDP delete: %x; want lifetime 0, the nonce, the granted port suggested", got)
	}
}

func TestPCPMapRequestRejects(t *testing.T) {
	p := &pcpMapper{local: lanHost}
	e := testMapEntry(lanHost)
	e.Protocol = "sctp"
	if _, err := p.mapRequest(e, 1, 1); err == nil {
		t.Error("sctp accepted")
	}
	e = testMapEntry(lanHost)
	e.InternalPort = 0
	if _, err := p.mapRequest(e, 1, 1); err == nil {
		t.Error("internal port 0 accepted")
	}
}

func TestSeconds(t *testing.T) {
	for d, want := range map[time.Duration]uint32{
		0: 0, -time.Second: 0, time.Millisecond: 1, time.Hour: 3600, 1<<62 - 1: 1<<32 - 1,
	} {
		if got := seconds(d); got != want {
			t.Errorf("seconds(%v) = %d, want %d", d, got, want)
		}
	}
}

// mapResponse41500 is §7.2 + §11.1: SUCCESS, lifetime 600, epoch 42,
// assigned 50.60.70.1:41500.
const mapResponse41500 = `
	02 81 00 00                         // version 2, R=1 opcode MAP, reserved, result SUCCESS
	00000258                            // lifetime 600
	0000002a                            // epoch time 42
	00000000 00000000 00000000          // reserved
	01020304 05060708 090a0b0c          // mapping nonce
	06 000000                           // protocol TCP, reserved
	a21c a21c                           // internal port 41500, assigned external port 41500
	00000000 00000000 0000ffff 323c4601 // assigned external IP ::ffff:50.60.70.1
`

func TestDecodePCPSuccess(t *testing.T) {
	m, err := decodePCP(unhex(t, mapResponse41500))
	if err != nil {
		t.Fatal(err)
	}
	want := pcpMap{Nonce: testNonce, Protocol: pcpProtoTCP, InternalPort: 41500, Port: 41500,
		IP: netip.MustParseAddr("50.60.70.1")}
	if m.Opcode != pcpOpMap || m.Result != Success || m.Lifetime != 600 || m.Epoch != 42 || m.Map == nil || *m.Map != want {
		t.Errorf("decoded %+v map %+v", m, m.Map)
	}
	announce := unhex(t, `02 80 00 00  00000000  00001000  00000000 00000000 00000000`)
	if m, err := decodePCP(announce); err != nil || m.Opcode != pcpOpAnnounce || m.Epoch != 4096 || m.Map != nil {
		t.Errorf("ANNOUNCE response: %+v, %v", m, err)
	}
}

func TestDecodePCPOptions(t *testing.T) {
	unknown := `
		80 00 0005 aabbccdd ee000000 // optional option 128, length 5, padded to 8
		7f 00 0000                   // unknown mandatory option 127, empty: a client ignores it
	`
	m, err := decodePCP(unhex(t, mapResponse41500+unknown+thirdParty77_11))
	if err != nil || m.ThirdParty != netip.MustParseAddr("192.168.77.11") || m.Map == nil {
		t.Errorf("options: %+v, %v", m, err)
	}
	for name, opts := range map[string]string{
		"length past the end":      `80 00 0009 aabbccdd ee000000`,
		"padding past the end":     `80 00 0005 aabbccdd`,
		"short THIRD_PARTY":        `01 00 0004 c0a84d0b`,
		"THIRD_PARTY length cut":   `01 00 0010 00000000 00000000`,
		"valid then length past":   `7f 00 0000 80 00 0100`,
		"padding of 3 then absent": `80 00 0001`,
	} {
		if b := unhex(t, mapResponse41500+opts); func() error { _, err := decodePCP(b); return err }() == nil {
			t.Errorf("%s: accepted %x", name, b)
		}
	}
}

func TestDecodePCPRejects(t *testing.T) {
	ok := unhex(t, mapResponse41500)
	for name, b := range map[string][]byte{
		"empty":                   nil,
		"shorter than the header": ok[:20],
		"MAP payload cut":         ok[:40],
		"MAP success header only": ok[:24],
		"not whole words":         ok[:58],
		"oversized":               append(append([]byte{}, ok...), make([]byte, 1044)...),
		"R bit unset":             withByte(ok, 1, pcpOpMap),
		"version 3 success":       withByte(ok, 0, 3),
		"version 1 success":       withByte(ok, 0, 1),
	} {
		if m, err := decodePCP(b); err == nil {
			t.Errorf("%s: accepted as %+v", name, m)
		}
	}
	if len(ok)+1040 != pcpMaxSize {
		t.Fatal("the largest test message should be exactly 1100 bytes")
	}
	biggest := append(append([]byte{}, ok...), unhex(t, "80 00 040c")...)
	biggest = append(biggest, make([]byte, 1036)...)
	if _, err := decodePCP(biggest); err != nil {
		t.Errorf("an 1100-byte response with one long option: %v", err)
	}
}

func withByte(b []byte, i int, v byte) []byte {
	c := append([]byte{}, b...)
	c[i] = v
	return c
}

// TestDecodePCPOtherVersions: an answer in another version of the family
// (§9) says which.
func TestDecodePCPOtherVersions(t *testing.T) {
	for name, tc := range map[string]struct {
		layout  string
		version otherVersion
	}{
		"NAT-PMP":                  {`00 81 0001 00000e10`, 0}, // RFC 6886 §3.5
		"NAT-PMP op 128":           {`00 80 0001 00000000`, 0},
		"NAT-PMP as §3.5 draws it": {`00 00 0001 00000000`, 0},
		"PCP draft (v1)":           {`01 81 00 01 00000000 00000000 00000000 00000000 00000000`, 1},
		"v3 UNSUPP_VERSION":        {`03 80 00 01 00000000 00000000 00000000 00000000 00000000`, 3},
	} {
		var v otherVersion
		if _, err := decodePCP(unhex(t, tc.layout)); !errors.As(err, &v) || v != tc.version {
			t.Errorf("%s: %v; want an answer in version %d", name, err, tc.version)
		}
	}
}

// TestDecodePCPErrorCodes decodes a header-only error response for every
// result code of §7.4, and checks the error a caller gets.
func TestDecodePCPErrorCodes(t *testing.T) {
	p := &pcpMapper{local: lanHost}
	for code := UnsuppVersion; code <= ExcessiveRemotePeers+1; code++ {
		b := unhex(t, `02 81 00 00 00000708 0000002a 00000000 00000000 00000000`)
		b[3] = byte(code)
		m, err := decodePCP(b)
		if err != nil || m.Result != code || m.Map != nil || m.Lifetime != 1800 {
			t.Errorf("code %d: %+v, %v", code, m, err)
			continue
		}
		perr := p.failure(m, pcpRequest{Opcode: pcpOpMap, Client: lanHost}, forward.Mapping{})
		var got ResultCode
		if msg := perr.Error(); !strings.HasPrefix(msg, "PCP MAP failed with "+code.String()) || !errors.As(perr, &got) || got != code {
			t.Errorf("code %d: %q", code, msg)
		}
	}
	// The MAP payload copied into an error response is decoded too.
	full := withByte(unhex(t, mapResponse41500), 3, byte(CannotProvideExternal))
	if m, err := decodePCP(full); err != nil || m.Map == nil || m.Result != CannotProvideExternal {
		t.Errorf("error with payload: %+v, %v", m, err)
	}
}

// TestPCPMeaning: what each result code says and wraps, with the request
// it answered.
func TestPCPMeaning(t *testing.T) {
	p := &pcpMapper{local: lanHost}
	third := netip.MustParseAddr("192.168.77.11")
	for _, tc := range []struct {
		code    ResultCode
		req     pcpRequest
		is      error
		mention []string
	}{
		{NotAuthorized, pcpRequest{Opcode: pcpOpMap, ThirdParty: third}, forward.ErrNotAuthorized,
			[]string{"refuses mappings for other hosts", "pcp_allow_thirdparty=yes", "run portfwd on 192.168.77.11"}},
		{NotAuthorized, pcpRequest{Opcode: pcpOpMap}, forward.ErrNotAuthorized, []string{"does not allow this mapping"}},
		{UnsuppOption, pcpRequest{Opcode: pcpOpMap, ThirdParty: third}, forward.ErrNotAuthorized,
			[]string{"rejects PCP's THIRD_PARTY option", "pcp_allow_thirdparty=yes", "run portfwd on 192.168.77.11"}},
		{UnsuppOption, pcpRequest{Opcode: pcpOpMap}, nil, []string{"please report it"}},
		{AddressMismatch, pcpRequest{Opcode: pcpOpMap, Client: lanHost}, forward.ErrDoubleNAT, []string{"double NAT", "192.168.77.10"}},
		{CannotProvideExternal, pcpRequest{Opcode: pcpOpMap}, forward.ErrConflict, []string{"external port is taken"}},
		{NoResources, pcpRequest{Opcode: pcpOpMap}, nil, []string{"out of mappings"}},
		{UserExQuota, pcpRequest{Opcode: pcpOpMap}, nil, []string{"out of mappings"}},
		{UnsuppVersion, pcpRequest{Opcode: pcpOpAnnounce}, forward.ErrNoGateway, []string{"PCP ANNOUNCE", "version 2"}},
		{UnsuppOpcode, pcpRequest{Opcode: pcpOpMap}, forward.ErrNoGateway, []string{"does not support this PCP operation"}},
		{200, pcpRequest{Opcode: pcpOpMap}, nil, []string{"result code 200", "does not define"}},
	} {
		err := p.failure(pcpMessage{Result: tc.code}, tc.req, forward.Mapping{})
		for _, s := range tc.mention {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%v: %q does not mention %q", tc.code, err, s)
			}
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%v is not %v", tc.code, tc.is)
		}
		if tc.is == nil && (errors.Is(err, forward.ErrNotAuthorized) || errors.Is(err, forward.ErrConflict) || errors.Is(err, forward.ErrNoGateway)) {
			t.Errorf("%v wraps a sentinel it should not", tc.code)
		}
	}
	if e := p.failure(pcpMessage{Result: NetworkFailure}, pcpRequest{Opcode: pcpOpMap}, forward.Mapping{}).(*gatewayError); !e.wan {
		t.Error("NETWORK_FAILURE is not left to the backend's WAN diagnosis")
	}
}

// TestPCPRestarted: RFC 6887 §8.5, in integer seconds.
func TestPCPRestarted(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	for _, tc := range []struct {
		prev, cur uint32
		elapsed   time.Duration
		lost      bool
	}{
		{1000, 1060, time.Minute, false},
		{1000, 1061, time.Minute, false}, // a second of jitter
		{1000, 1000, time.Second, false}, // within 2 s
		{1000, 999, 0, false},            // one second back is reordering
		{1000, 998, 0, true},             // backwards: restarted
		{1000, 5, time.Minute, true},     // restarted a while ago
		{1000, 1010, time.Hour, true},    // the server's clock barely moved: restarted and counted up again
		{1000, 5000, time.Minute, true},  // the server moved far more than the client
		{1000, 4400, time.Hour, false},   // an hour, 200 s slower: within 1/16 + 2 s
		{1000, 4373, time.Hour, false},   // 3600 - 3600/16 - 2 = 3373: just within
		{1000, 4372, time.Hour, true},    // one second more: lost
		{0xfffffff0, 0xffffffff, 15 * time.Second, false},
	} {
		if got := (&pcpMapper{}).restarted(tc.prev, t0, tc.cur, t0.Add(tc.elapsed)); got != tc.lost {
			t.Errorf("epoch %d then %d after %v: lost = %v, want %v", tc.prev, tc.cur, tc.elapsed, got, tc.lost)
		}
	}
}

func TestNonces(t *testing.T) {
	if newNonce() == newNonce() {
		t.Error("two nonces alike")
	}
	if n, ok := decodeNonce(encodeNonce(testNonce)); !ok || n != testNonce {
		t.Errorf("nonce round trip: %x, %v", n, ok)
	}
	for _, bad := range []string{"", "0011", "zz112233445566778899aabb", "00112233445566778899aabbcc"} {
		if _, ok := decodeNonce(bad); ok {
			t.Errorf("decodeNonce(%q) accepted", bad)
		}
	}
}

// FuzzDecodePCP: any datagram decodes or errs, never panics, and what
// decodes respects the sizes of RFC 6887 §7.
func FuzzDecodePCP(f *testing.F) {
	f.Add(unhex(f, mapResponse41500))
	f.Add(unhex(f, mapResponse41500+thirdParty77_11))
	f.Add(unhex(f, mapResponse41500+`80 00 0005 aabbccdd ee000000`))
	f.Add(unhex(f, `02 80 00 00  00000000  00001000  00000000 00000000 00000000`))
	f.Add(unhex(f, `02 81 00 02 00000708 0000002a 00000000 00000000 00000000`))
	f.Add(unhex(f, `00 81 0001 00000e10`))
	f.Add(unhex(f, `01 81 00 01 00000000 00000000 00000000 00000000 00000000`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodePCP(b)
		if err != nil {
			return
		}
		if len(b) > pcpMaxSize || len(b) < pcpHeaderSize || len(b)%4 != 0 || b[0] != pcpVersion {
			t.Fatalf("accepted a %d-byte datagram of version %d", len(b), b[0])
		}
		if m.Map != nil && (m.Opcode != pcpOpMap || len(b) < pcpHeaderSize+pcpMapSize) {
			t.Fatalf("MAP payload in %d bytes, opcode %d", len(b), m.Opcode)
		}
		if m.Opcode == pcpOpMap && m.Result == Success && m.Map == nil {
			t.Fatal("a MAP success without its payload")
		}
		if m.ThirdParty.IsValid() && !m.ThirdParty.Is4() && !m.ThirdParty.Is6() {
			t.Fatal("odd third party address")
		}
	})
}
