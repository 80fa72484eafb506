package upnp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// unhex decodes a byte layout written as hex with spaces, newlines and
// "// ..." comments, so tests read like the RFC 6887 figures.
func unhex(t testing.TB, layout string) []byte {
	t.Helper()
	var clean strings.Builder
	for line := range strings.Lines(layout) {
		line, _, _ = strings.Cut(line, "//")
		clean.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(clean.String())
	if err != nil {
		t.Fatalf("bad layout: %v", err)
	}
	return b
}

var testNonce = [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}

// mapRequest25565 is §7.1 + §11.1 for TCP 25565, lifetime 3600, client
// 192.168.77.10, written out by hand.
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

func TestPCPMarshalMap(t *testing.T) {
	c := &PCPClient{Local: netip.MustParseAddr("192.168.77.10")}
	for _, tc := range []struct {
		name   string
		third  netip.Addr
		layout string
	}{
		{"plain", netip.Addr{}, mapRequest25565},
		{"third party", netip.MustParseAddr("192.168.77.11"), mapRequest25565 + thirdParty77_11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := c.mapRequest(MapRequest{Nonce: testNonce, Protocol: forward.TCP, InternalPort: 25565,
				SuggestedPort: 25565, Lifetime: time.Hour, ThirdParty: tc.third})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := req.marshal(), unhex(t, tc.layout); !bytes.Equal(got, want) {
				t.Errorf("MAP request\n got %x\nwant %x", got, want)
			}
		})
	}
}

func TestPCPMarshalAnnounceAndDelete(t *testing.T) {
	client := netip.MustParseAddr("192.168.77.10")
	announce := pcpRequest{Opcode: pcpOpAnnounce, Client: client}.marshal()
	want := unhex(t, `02 00 0000  00000000  00000000 00000000 0000ffff c0a84d0a`)
	if !bytes.Equal(announce, want) {
		t.Errorf("ANNOUNCE\n got %x\nwant %x", announce, want)
	}
	c := &PCPClient{Local: client}
	req, _ := c.mapRequest(MapRequest{Nonce: testNonce, Protocol: forward.UDP, InternalPort: 25565,
		SuggestedIP: netip.MustParseAddr("50.60.70.1")})
	got := req.marshal()
	if got[4]|got[5]|got[6]|got[7] != 0 || got[36] != pcpProtoUDP || !bytes.Equal(got[42:44], []byte{0, 0}) ||
		!bytes.Equal(got[44:60], unhex(t, "00000000 00000000 0000ffff 323c4601")) {
		t.Errorf("UDP delete with suggested IP: %x", got)
	}
}

func TestPCPMapRequestRejects(t *testing.T) {
	c := &PCPClient{Local: netip.MustParseAddr("192.168.77.10")}
	if _, err := c.mapRequest(MapRequest{Protocol: "sctp", InternalPort: 1}); err == nil {
		t.Error("sctp accepted")
	}
	if _, err := c.mapRequest(MapRequest{Protocol: forward.TCP}); err == nil {
		t.Error("internal port 0 accepted")
	}
}

func TestPCPLifetime(t *testing.T) {
	for d, want := range map[time.Duration]uint32{
		0: 0, -time.Second: 0, time.Millisecond: 1, time.Hour: 3600, 1<<62 - 1: 1<<32 - 1,
	} {
		if got := pcpLifetime(d); got != want {
			t.Errorf("pcpLifetime(%v) = %d, want %d", d, got, want)
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

func TestDecodePCPResponseSuccess(t *testing.T) {
	m, err := decodePCPResponse(unhex(t, mapResponse41500))
	if err != nil {
		t.Fatal(err)
	}
	want := pcpMap{Nonce: testNonce, Protocol: pcpProtoTCP, InternalPort: 41500, Port: 41500,
		IP: netip.MustParseAddr("50.60.70.1")}
	if m.Version != 2 || m.Opcode != pcpOpMap || m.Result != PCPSuccess || m.Lifetime != 600 || m.Epoch != 42 ||
		m.Map == nil || *m.Map != want {
		t.Errorf("decoded %+v map %+v", m, m.Map)
	}
	announce := unhex(t, `02 80 00 00  00000000  00001000  00000000 00000000 00000000`)
	if m, err := decodePCPResponse(announce); err != nil || m.Opcode != pcpOpAnnounce || m.Epoch != 4096 || m.Map != nil {
		t.Errorf("ANNOUNCE response: %+v, %v", m, err)
	}
}

func TestDecodePCPResponseOptions(t *testing.T) {
	unknown := `
		80 00 0005 aabbccdd ee000000 // optional option 128, length 5, padded to 8
		7f 00 0000                   // unknown mandatory option 127, empty: a client ignores it
	`
	m, err := decodePCPResponse(unhex(t, mapResponse41500+unknown+thirdParty77_11))
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
		b := unhex(t, mapResponse41500+opts)
		if _, err := decodePCPResponse(b); err == nil {
			t.Errorf("%s: accepted %x", name, b)
		}
	}
}

func TestDecodePCPResponseRejects(t *testing.T) {
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
		if m, err := decodePCPResponse(b); err == nil {
			t.Errorf("%s: accepted as %+v", name, m)
		}
	}
	if len(ok)+1040 != pcpMaxSize {
		t.Fatal("the largest test message should be exactly 1100 bytes")
	}
	biggest := append(append([]byte{}, ok...), unhex(t, "80 00 040c")...)
	biggest = append(biggest, make([]byte, 1036)...)
	if _, err := decodePCPResponse(biggest); err != nil {
		t.Errorf("an 1100-byte response with one long option: %v", err)
	}
}

func withByte(b []byte, i int, v byte) []byte {
	c := append([]byte{}, b...)
	c[i] = v
	return c
}

func TestDecodePCPResponseOtherVersions(t *testing.T) {
	for name, tc := range map[string]struct {
		layout  string
		version uint8
		opcode  uint8
	}{
		// RFC 6886 §3.5: a NAT-PMP server's "unsupported version".
		"NAT-PMP":         {`00 81 0001 00000e10`, 0, pcpOpMap},
		"NAT-PMP op 128":  {`00 80 0001 00000000`, 0, pcpOpAnnounce},
		"PCP draft (v1)":  {`01 81 00 01 00000000 00000000 00000000 00000000 00000000`, 1, pcpOpMap},
		"v3 UNSUPP_VERS.": {`03 80 00 01 00000000 00000000 00000000 00000000 00000000`, 3, pcpOpAnnounce},
	} {
		m, err := decodePCPResponse(unhex(t, tc.layout))
		if err != nil || m.Version != tc.version || m.Result != PCPUnsuppVersion || m.Opcode != tc.opcode {
			t.Errorf("%s: %+v, %v", name, m, err)
		}
	}
}

// TestDecodePCPResponseErrorCodes decodes a header-only error response for
// every result code of §7.4 and checks the error a caller gets.
func TestDecodePCPResponseErrorCodes(t *testing.T) {
	client := netip.MustParseAddr("192.168.77.10")
	for code := PCPUnsuppVersion; code <= PCPExcessiveRemotePeers+1; code++ {
		b := unhex(t, `02 81 00 00 00000708 0000002a 00000000 00000000 00000000`)
		b[3] = byte(code)
		m, err := decodePCPResponse(b)
		if err != nil || m.Result != code || m.Map != nil || m.Lifetime != 1800 {
			t.Errorf("code %d: %+v, %v", code, m, err)
			continue
		}
		perr := pcpResultError(m, pcpRequest{Opcode: pcpOpMap, Client: client})
		if msg := perr.Error(); !strings.HasPrefix(msg, "PCP MAP failed with "+code.String()+": ") {
			t.Errorf("code %d: message %q", code, msg)
		}
	}
	// The MAP payload copied into an error response is decoded too.
	full := withByte(unhex(t, mapResponse41500), 3, byte(PCPCannotProvideExternal))
	if m, err := decodePCPResponse(full); err != nil || m.Map == nil || m.Result != PCPCannotProvideExternal {
		t.Errorf("error with payload: %+v, %v", m, err)
	}
}

func TestPCPErrorMeaning(t *testing.T) {
	client, other := netip.MustParseAddr("192.168.77.10"), netip.MustParseAddr("192.168.77.11")
	for _, tc := range []struct {
		err     *PCPError
		is      error
		mention []string
	}{
		{&PCPError{Code: PCPNotAuthorized, Opcode: pcpOpMap, ThirdParty: other}, forward.ErrNotAuthorized,
			[]string{"refuses mappings for other hosts", "pcp_allow_thirdparty=yes", "run portfwd on 192.168.77.11"}},
		{&PCPError{Code: PCPNotAuthorized, Opcode: pcpOpMap}, forward.ErrNotAuthorized, []string{"does not allow this mapping"}},
		{&PCPError{Code: PCPUnsuppOption, Opcode: pcpOpMap, ThirdParty: other}, forward.ErrNotAuthorized,
			[]string{"rejects PCP's THIRD_PARTY option", "pcp_allow_thirdparty=yes", "run portfwd on 192.168.77.11"}},
		{&PCPError{Code: PCPAddressMismatch, Opcode: pcpOpMap, Client: client}, forward.ErrDoubleNAT,
			[]string{"double NAT", "192.168.77.10"}},
		{&PCPError{Code: PCPCannotProvideExternal, Opcode: pcpOpMap}, forward.ErrConflict, []string{"external port is taken"}},
		{&PCPError{Code: PCPNoResources, Opcode: pcpOpMap}, nil, []string{"out of mappings"}},
		{&PCPError{Code: PCPUserExQuota, Opcode: pcpOpMap}, nil, []string{"out of mappings"}},
		{&PCPError{Code: PCPUnsuppVersion, Opcode: pcpOpMap, Version: 0}, ErrPCPUnsupported, []string{"NAT-PMP only"}},
		{&PCPError{Code: PCPUnsuppVersion, Opcode: pcpOpAnnounce, Version: 1}, ErrPCPUnsupported, []string{"PCP ANNOUNCE", "version 1"}},
		{&PCPError{Code: PCPUnsuppOpcode, Opcode: pcpOpMap}, ErrPCPUnsupported, []string{"does not support this PCP operation"}},
		{&PCPError{Code: 200, Opcode: pcpOpMap}, nil, []string{"result code 200"}},
	} {
		msg := tc.err.Error()
		for _, s := range tc.mention {
			if !strings.Contains(msg, s) {
				t.Errorf("%v: %q does not mention %q", tc.err.Code, msg, s)
			}
		}
		if tc.is != nil && !errors.Is(tc.err, tc.is) {
			t.Errorf("%v is not %v", tc.err.Code, tc.is)
		}
		if tc.is == nil && (errors.Is(tc.err, forward.ErrNotAuthorized) || errors.Is(tc.err, forward.ErrConflict)) {
			t.Errorf("%v wraps a sentinel it should not", tc.err.Code)
		}
	}
	if (&PCPError{Code: PCPUnsuppVersion, Version: 0}).NATPMPOnly() != true ||
		(&PCPError{Code: PCPUnsuppVersion, Version: 1}).NATPMPOnly() {
		t.Error("NATPMPOnly")
	}
}

// FuzzDecodePCPResponse: any datagram decodes or errs, never panics, and
// what decodes respects the sizes of RFC 6887 §7.
func FuzzDecodePCPResponse(f *testing.F) {
	f.Add(unhex(f, mapResponse41500))
	f.Add(unhex(f, mapResponse41500+thirdParty77_11))
	f.Add(unhex(f, mapResponse41500+`80 00 0005 aabbccdd ee000000`))
	f.Add(unhex(f, `02 80 00 00  00000000  00001000  00000000 00000000 00000000`))
	f.Add(unhex(f, `02 81 00 02 00000708 0000002a 00000000 00000000 00000000`))
	f.Add(unhex(f, `00 81 0001 00000e10`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodePCPResponse(b)
		if err != nil {
			return
		}
		if len(b) > pcpMaxSize || len(b) < 4 {
			t.Fatalf("accepted a %d-byte datagram", len(b))
		}
		if m.Version == pcpVersion && (len(b) < pcpHeaderSize || len(b)%4 != 0) {
			t.Fatalf("accepted a PCP response of %d bytes", len(b))
		}
		if m.Map != nil && (m.Opcode != pcpOpMap || len(b) < pcpHeaderSize+pcpMapSize) {
			t.Fatalf("MAP payload in %d bytes, opcode %d", len(b), m.Opcode)
		}
		if m.Version != pcpVersion && m.Result != PCPUnsuppVersion {
			t.Fatalf("version %d with result %v", m.Version, m.Result)
		}
		if m.ThirdParty.IsValid() && !m.ThirdParty.Is4() && !m.ThirdParty.Is6() {
			t.Fatal("odd third party address")
		}
	})
}
