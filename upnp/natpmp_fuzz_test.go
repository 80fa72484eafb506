package upnp

import (
	"context"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// FuzzNATPMPResponse feeds arbitrary bytes to the NAT-PMP backend as the
// gateway's answer to both requests (RFC 6886 §3.2, §3.3), through the real
// go-nat-pmp decoder on a loopback socket. Whatever arrives, the backend
// must not panic, and what it accepts must be a sane mapping.
func FuzzNATPMPResponse(f *testing.F) {
	f.Add([]byte{0, 128, 0, 0, 0, 0, 0, 9, 50, 60, 70, 1})                            // external address 50.60.70.1
	f.Add([]byte{0, 129, 0, 0, 0, 0, 0, 9, 0x63, 0xdd, 0x63, 0xdd, 0, 0, 0x0e, 0x10}) // tcp 25565 for 3600 s
	f.Add([]byte{0, 129, 0, 3, 0, 0, 0, 9, 0x63, 0xdd, 0, 0, 0, 0, 0, 0})             // network failure
	f.Add([]byte{2, 129, 0, 0})                                                       // a PCP answer
	f.Add([]byte{})
	gw, answer := natpmpResponder(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		answer.Store(&data)
		state, err := forward.OpenState(t.TempDir(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer state.Close()
		n, err := NewNATPMP(gw, state, NATPMPOptions{Timeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		_, _ = n.ExternalAddr(ctx)
		want := forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: 25565},
			InternalHost: n.LocalAddr(), InternalPort: 25565, Description: "portfwd:fuzz", Lease: time.Hour, Enabled: true}
		got, err := n.Add(ctx, want)
		if err == nil && (got.Key != want.Key || got.InternalPort != want.InternalPort || got.Lease <= 0) {
			t.Errorf("Add accepted an answer as %+v", got)
		}
		_, _ = n.List(ctx)
	})
}

// natpmpResponder answers every datagram on port 5351 of a loopback address
// of this process's own with the bytes stored in the returned value.
// Fuzz workers are separate processes, so the address comes from the pid.
func natpmpResponder(f *testing.F) (netip.Addr, *atomic.Pointer[[]byte]) {
	pid := os.Getpid()
	gw := netip.AddrFrom4([4]byte{127, byte(pid >> 16), byte(pid >> 8), byte(pid)})
	if gw == netip.MustParseAddr("127.0.0.1") || pid&0xff == 0 {
		gw = netip.AddrFrom4([4]byte{127, 99, byte(pid >> 8), 7})
	}
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, natpmpPort)))
	if err != nil {
		f.Skipf("cannot listen on %v:%d: %v", gw, natpmpPort, err)
	}
	f.Cleanup(func() { pc.Close() })
	var answer atomic.Pointer[[]byte]
	empty := []byte{}
	answer.Store(&empty)
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteToUDPAddrPort(*answer.Load(), from)
		}
	}()
	return gw, &answer
}
