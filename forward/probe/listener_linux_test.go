//go:build linux

package probe

import (
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/portfwd/portfwd/forward"
)

// TestBindingsReal opens real sockets in this process and finds them,
// with this process as their owner, through the real /proc.
func TestBindingsReal(t *testing.T) {
	loop := listen(t, "tcp4", "127.0.0.1:0")
	wild := listen(t, "tcp4", "0.0.0.0:0")
	udp, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()

	checkBinding(t, forward.TCP, loop.Addr(), "127.0.0.1", false)
	checkBinding(t, forward.TCP, wild.Addr(), "0.0.0.0", true)
	checkBinding(t, forward.UDP, udp.LocalAddr(), "0.0.0.0", true)

	// Go listens dual-stack, on ::, for "tcp" with a wildcard address.
	if dual, err := net.Listen("tcp", ":0"); err == nil {
		defer dual.Close()
		if dual.Addr().(*net.TCPAddr).IP.To4() == nil {
			checkBinding(t, forward.TCP, dual.Addr(), "::", true)
		}
	}
}

func listen(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// checkBinding asserts that Bindings finds exactly one socket on a's
// port, bound to host, owned by this process, and Reachable as want.
func checkBinding(t *testing.T, p forward.Protocol, a net.Addr, host string, want bool) {
	t.Helper()
	port := netip.MustParseAddrPort(a.String()).Port()
	bs, err := Bindings(p, port)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 {
		t.Fatalf("Bindings(%s, %d) = %+v, want one", p, port, bs)
	}
	b := bs[0]
	wantLocal := netip.AddrPortFrom(netip.MustParseAddr(host), port)
	if b.Local != wantLocal || b.Protocol != p {
		t.Errorf("%s/%d: bound %s %v, want %s %v", p, port, b.Protocol, b.Local, p, wantLocal)
	}
	if b.PID != os.Getpid() || b.Name == "" || b.Command == "" {
		t.Errorf("%s/%d: owner pid %d %q %q, want this process (%d)", p, port, b.PID, b.Name, b.Command, os.Getpid())
	}
	lan := netip.MustParseAddr("192.168.1.10")
	if got := b.Reachable(lan); got != want {
		t.Errorf("%s/%d on %v: Reachable = %v, want %v", p, port, b.Local, got, want)
	}
	if r := DescribeLocal(p, port, lan, bs); r.OK != want {
		t.Errorf("%s/%d: DescribeLocal = %+v, want OK %v", p, port, r, want)
	}
}
