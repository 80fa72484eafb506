package upnp

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// TestNATPMPResultCodes: each result code of RFC 6886 §3.5 becomes an
// error saying what to do, wrapping what callers branch on.
func TestNATPMPResultCodes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		code    uint16
		ext     [4]byte
		is      error
		says    string
		silent  bool
		extCode uint16
	}{
		{name: "version", code: 1, says: "use backend pcp or upnp"},
		{name: "refused", code: 2, is: forward.ErrNotAuthorized, says: "NAT-PMP is switched off or refuses this host"},
		{name: "no WAN", code: 3, extCode: 3, says: "no working WAN connection"},
		{name: "CGNAT", code: 3, ext: [4]byte{100, 64, 0, 1}, is: forward.ErrDoubleNAT, says: "WAN address 100.64.0.1 is private or shared"},
		{name: "private WAN", code: 3, ext: [4]byte{192, 168, 0, 2}, is: forward.ErrDoubleNAT, says: "carrier-grade NAT"},
		{name: "resources", code: 4, says: "no room for another mapping"},
		{name: "opcode", code: 5, says: "does not implement this request"},
		{name: "timeout", silent: true, is: forward.ErrNoGateway, says: "NAT-PMP did not answer at 127.0.0.1:5351 within 1s (is NAT-PMP switched off on the router?); try backend upnp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newNATPMPEnv(t)
			e.fake.ext, e.fake.silent = tc.ext, tc.silent
			// A first mapping works (unless the gateway is silent); then
			// the codes apply to the next one.
			_, err := e.n.Add(testCtx(t), natpmpMapping(forward.TCP, 25565, time.Hour))
			if err == nil {
				e.fake.code, e.fake.extCode = tc.code, tc.extCode
				_, err = e.n.Add(testCtx(t), natpmpMapping(forward.TCP, 25566, time.Hour))
			}
			if err == nil || !strings.Contains(err.Error(), tc.says) || !strings.HasPrefix(err.Error(), "adding mapping tcp/2556") {
				t.Fatalf("Add = %v; want it to say %q", err, tc.says)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("%v does not wrap %v", err, tc.is)
			}
			var pe *NATPMPError
			if tc.code != 0 && (!errors.As(err, &pe) || pe.Code != tc.code) {
				t.Errorf("%v: want a *NATPMPError with code %d", err, tc.code)
			}
			t.Log(err)
		})
	}
}

// TestNATPMPLibraryErrors: the error texts explain reads are the ones
// github.com/jackpal/go-nat-pmp produces, on a real socket: a result code
// from a NAT-PMP responder on loopback, and ICMP port unreachable where
// nothing listens.
func TestNATPMPLibraryErrors(t *testing.T) {
	gw := netip.MustParseAddr("127.42.0.1")
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, natpmpPort)))
	if err != nil {
		t.Skipf("cannot listen on %v:%d: %v", gw, natpmpPort, err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 16)
		for {
			n, from, err := pc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if n >= 2 { // RFC 6886 §3.5: version, op|128, result code 2
				pc.WriteToUDP([]byte{0, buf[1] | 0x80, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, from)
			}
		}
	}()
	for _, tc := range []struct {
		gw   netip.Addr
		is   error
		says string
	}{
		{gw, forward.ErrNotAuthorized, "NAT-PMP result code 2"},
		{netip.MustParseAddr("127.42.0.2"), forward.ErrNoGateway, "nothing listens for NAT-PMP at 127.42.0.2:5351"},
	} {
		n, err := NewNATPMP(tc.gw, newNATPMPEnv(t).state, NATPMPOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = n.Add(testCtx(t), natpmpMapping(forward.UDP, 25565, time.Hour))
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("Add via %v = %v; want %v saying %q", tc.gw, err, tc.is, tc.says)
		}
	}
}
