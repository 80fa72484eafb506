package pcp

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
// "// ..." comments, so tests read like the RFCs' figures.
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

func TestNATPMPRequests(t *testing.T) {
	if got, want := natpmpExternalRequest(), unhex(t, `00 00 // RFC 6886 §3.2: version 0, op 0`); !bytes.Equal(got, want) {
		t.Errorf("external address request %x, want %x", got, want)
	}
	for _, tc := range []struct {
		p        forward.Protocol
		lifetime uint32
		layout   string
	}{
		{forward.TCP, 3600, `
			00 02 0000 // version 0, op 2 (map TCP), reserved
			63dd 63dd  // internal port 25565, suggested external port 25565
			00000e10   // requested lifetime 3600`},
		{forward.UDP, 0, `
			00 01 0000 // op 1 (map UDP)
			63dd 63dd  // §3.4: lifetime 0 deletes
			00000000`},
	} {
		op, err := natpmpOp(tc.p)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := natpmpMapRequest(op, 25565, 25565, tc.lifetime), unhex(t, tc.layout); !bytes.Equal(got, want) {
			t.Errorf("%s request\n got %x\nwant %x", tc.p, got, want)
		}
	}
	if _, err := natpmpOp("sctp"); err == nil {
		t.Error("sctp accepted")
	}
}

func TestDecodeNATPMP(t *testing.T) {
	for name, tc := range map[string]struct {
		layout string
		want   natpmpResponse
	}{
		"external address": {`
			00 80 0000 // version 0, op 128+0, result success
			00000e10   // seconds since start of epoch 3600
			323c4601   // external address 50.60.70.1`,
			natpmpResponse{epoch: 3600, external: netip.MustParseAddr("50.60.70.1")}},
		"TCP mapping": {`
			00 82 0000 00000009 // op 128+2, success, epoch 9
			63dd 63de           // internal port 25565, mapped external port 25566
			00001c20            // lifetime 7200`,
			natpmpResponse{op: 2, epoch: 9, internal: 25565, mapped: 25566, lifetime: 7200}},
		"deletion": {`00 81 0000 00000009  63dd 0000  00000000 // §3.4: external port 0, lifetime 0`,
			natpmpResponse{op: 1, epoch: 9, internal: 25565}},
		"failure in full": {`00 82 0003 00000009  63dd 0000  00000000 // §3.5: network failure`,
			natpmpResponse{op: 2, result: NATPMPNetworkFailure, epoch: 9, internal: 25565}},
		"no address": {`00 80 0003 00000009 00000000`,
			natpmpResponse{result: NATPMPNetworkFailure, epoch: 9, external: netip.IPv4Unspecified()}},
		"unsupported opcode, header only": {`00 82 0005 00000009 // miniupnpd`,
			natpmpResponse{op: 2, result: NATPMPUnsupportedOpcode, epoch: 9, short: true}},
		"unsupported version as §3.5 draws it": {`00 00 0001 00000009 // opcode 0, no reply bit`,
			natpmpResponse{result: NATPMPUnsupportedVersion, epoch: 9, short: true}},
	} {
		got, err := decodeNATPMP(unhex(t, tc.layout))
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v\nwant %+v", name, got, err, tc.want)
		}
	}
}

func TestDecodeNATPMPRejects(t *testing.T) {
	mapped := unhex(t, `00 82 0000 00000009 63dd 63dd 00001c20`)
	for name, b := range map[string][]byte{
		"empty":                  nil,
		"one byte":               {0},
		"header cut":             mapped[:7],
		"success header only":    mapped[:8],
		"mapping cut":            mapped[:12],
		"mapping too long":       append(append([]byte{}, mapped...), 0, 0, 0, 0),
		"external address cut":   unhex(t, `00 80 0000 00000009 323c46`),
		"external as a map":      unhex(t, `00 80 0000 00000009 63dd 63dd 00001c20`),
		"failure of odd length":  unhex(t, `00 82 0002 00000009 63dd`),
		"a request echoed":       unhex(t, `00 02 0000 63dd 63dd 00001c20`),
		"response to unknown op": unhex(t, `00 83 0000 00000009`),
	} {
		if r, err := decodeNATPMP(b); err == nil {
			t.Errorf("%s: accepted %x as %+v", name, b, r)
		}
	}
	var v otherVersion
	if _, err := decodeNATPMP(unhex(t, `02 80 00 01 00000000 0000002a 00000000 00000000 00000000`)); !errors.As(err, &v) || v != pcpVersion {
		t.Errorf("a PCP answer: %v; want otherVersion 2", err)
	}
	if _, err := decodeNATPMP(unhex(t, `02 00 0000 00000000`)); errors.As(err, &v) {
		t.Error("a PCP request taken as an answer in another version")
	}
}

func TestNATPMPResultCodeNames(t *testing.T) {
	for code, want := range map[NATPMPResultCode]string{
		NATPMPSuccess:           "NAT-PMP result code 0 (success)",
		NATPMPNotAuthorized:     "NAT-PMP result code 2 (not authorized/refused)",
		NATPMPUnsupportedOpcode: "NAT-PMP result code 5 (unsupported opcode)",
		9:                       "NAT-PMP result code 9 (undefined result code 9)",
	} {
		if code.Error() != want {
			t.Errorf("%d: %q, want %q", uint16(code), code.Error(), want)
		}
	}
}

// TestNATPMPMeaning: each result code of RFC 6886 §3.5 says what to do and
// wraps what callers branch on.
func TestNATPMPMeaning(t *testing.T) {
	for _, tc := range []struct {
		code NATPMPResultCode
		is   error
		says string
	}{
		{NATPMPUnsupportedVersion, forward.ErrNoGateway, "use backend pcp or upnp"},
		{NATPMPNotAuthorized, forward.ErrNotAuthorized, "NAT-PMP is switched off or refuses this host"},
		{NATPMPOutOfResources, nil, "no room for another mapping"},
		{NATPMPUnsupportedOpcode, forward.ErrNoGateway, "does not implement this request"},
		{42, nil, "not in RFC 6886"},
	} {
		err := natpmpFailure(tc.code)
		var code NATPMPResultCode
		if !errors.As(err, &code) || code != tc.code || !strings.Contains(err.Error(), tc.says) ||
			!strings.HasPrefix(err.Error(), tc.code.Error()+": ") {
			t.Errorf("%d: %v; want the code, saying %q", uint16(tc.code), err, tc.says)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%d: %v does not wrap %v", uint16(tc.code), err, tc.is)
		}
	}
	if e := natpmpFailure(NATPMPNetworkFailure).(*gatewayError); !e.wan {
		t.Error("a network failure is not left to the backend's WAN diagnosis")
	}
}

// TestNATPMPRestarted: RFC 6886 §3.6 — 7/8 of the client's elapsed time,
// and 2 s of slack.
func TestNATPMPRestarted(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	for _, tc := range []struct {
		name    string
		cur     uint32
		elapsed time.Duration
		lost    bool
	}{
		{"advanced with the clock", 160, time.Minute, false},
		{"advanced 1/8 slower", 153, time.Minute, false},
		{"1/8 slower, less the 2 s allowed", 151, time.Minute, false},
		{"more than 2 s below the estimate", 150, time.Minute, true},
		{"same second", 100, 0, false},
		{"back 2 s: within the slack", 98, 0, false},
		{"back 3 s", 97, 0, true},
		{"went backwards (rebooted)", 5, time.Minute, true},
		{"advanced far less than the time passed", 110, 10 * time.Minute, true},
		{"the client's clock stepped back", 100, -time.Hour, false},
	} {
		if got := (&natpmpMapper{}).restarted(100, t0, tc.cur, t0.Add(tc.elapsed)); got != tc.lost {
			t.Errorf("%s: restarted = %v, want %v", tc.name, got, tc.lost)
		}
	}
}

// FuzzDecodeNATPMP: any datagram decodes or errs, never panics, and what
// decodes has a length RFC 6886 allows.
func FuzzDecodeNATPMP(f *testing.F) {
	f.Add(unhex(f, `00 80 0000 00000e10 323c4601`))
	f.Add(unhex(f, `00 82 0000 00000009 63dd 63de 00001c20`))
	f.Add(unhex(f, `00 82 0003 00000009 63dd 0000 00000000`))
	f.Add(unhex(f, `00 82 0005 00000009`))
	f.Add(unhex(f, `00 00 0001 00000009`))
	f.Add(unhex(f, `02 81 0001 00000000`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeNATPMP(b)
		if err != nil {
			return
		}
		switch {
		case b[0] != natpmpVersion:
			t.Fatalf("accepted version %d", b[0])
		case r.short && (len(b) != natpmpHeaderLen || r.result == NATPMPSuccess):
			t.Fatalf("a short answer of %d bytes, result %v", len(b), r.result)
		case !r.short && r.op == natpmpOpExternal && len(b) != natpmpExternalLen:
			t.Fatalf("an external address answer of %d bytes", len(b))
		case !r.short && r.op != natpmpOpExternal && len(b) != natpmpMapLen:
			t.Fatalf("a mapping answer of %d bytes", len(b))
		case r.op > natpmpOpMapTCP:
			t.Fatalf("opcode %d", r.op)
		}
	})
}

// TestDecodeNoiseIsNotAnotherVersion: each decoder takes only a whole
// answer of the other protocol for a gateway that speaks it (RFC 6887 §9:
// a PCP server refuses version 0 with UNSUPP_VERSION in a PCP header;
// RFC 6886 §3.5: a NAT-PMP server answers in version 0); anything else of
// the wrong version is noise, which the exchange ignores.
func TestDecodeNoiseIsNotAnotherVersion(t *testing.T) {
	var v otherVersion
	for _, noise := range []string{`ff ff`, `01 80`, `02 81 0000 00000009`, `02 80 00 01 00000000`,
		`02 80 00 00 00000000 0000002a 00000000 00000000 00000000`, `02 00 00 01 00000000 0000002a 00000000 00000000 00000000`} {
		if _, err := decodeNATPMP(unhex(t, noise)); err == nil || errors.As(err, &v) {
			t.Errorf("NAT-PMP decoder: %s gave %v; want it ignored as noise", noise, err)
		}
	}
	for _, noise := range []string{`00 80`, `00 80 0001`, `00 81 0000 00000009`, `00 80 0001 00000009 32`, `00 ff ffff ffffffff`} {
		if _, err := decodePCP(unhex(t, noise)); err == nil || errors.As(err, &v) {
			t.Errorf("PCP decoder: %s gave %v; want it ignored as noise", noise, err)
		}
	}
}
