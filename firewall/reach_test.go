package firewall

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// procRoute is a /proc/net/route line for dst/mask on iface, written as
// the kernel of this machine writes it.
func procRoute(iface, dst, mask string) string {
	hex := func(s string) string {
		a := netip.MustParseAddr(s).As4()
		return fmt.Sprintf("%08X", binary.NativeEndian.Uint32(a[:]))
	}
	return fmt.Sprintf("%s\t%s\t00000000\t0001\t0\t0\t0\t%s\t0\t0\t0\n", iface, hex(dst), hex(mask))
}

// TestHostProblem: a forward to a host on none of the router's LAN
// networks, and with no route to it but the default one, is named before
// any change; hosts on a LAN network, or behind a LAN-side route, are not.
func TestHostProblem(t *testing.T) {
	f, _ := newTest(t)
	routes := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		procRoute("wan0", "0.0.0.0", "0.0.0.0") + procRoute("wan0", "203.0.113.0", "255.255.255.0") +
		procRoute("lan0", "192.168.77.0", "255.255.255.0") + procRoute("lan0", "10.20.0.0", "255.255.0.0")
	f.sys.readFile = func(name string) ([]byte, error) {
		if name == routePath {
			return []byte(routes), nil
		}
		return []byte("1\n"), nil
	}
	for host, want := range map[string]string{
		"192.168.77.20": "", // on lan0
		"10.20.3.4":     "", // behind a router on the LAN
		"192.168.1.20":  "192.168.1.20 is on none of this router's LAN networks (192.168.77.0/24) and no route but the default one (out of wan0) leads to it",
		"203.0.113.9":   "203.0.113.9 is on none", // the WAN side is no LAN
	} {
		got := f.HostProblem(netip.MustParseAddr(host))
		if (want == "") != (got == "") || !strings.HasPrefix(got, want) {
			t.Errorf("HostProblem(%s) = %q; want %q…", host, got, want)
		}
	}
	if got := f.HostProblem(netip.Addr{}); got != "" {
		t.Errorf("HostProblem(self) = %q; want nothing", got)
	}
}
