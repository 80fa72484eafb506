package forward

import (
	"strings"
	"testing"
)

// ifInet6 is /proc/net/if_inet6 of a home PC with privacy addresses on:
// a stable SLAAC address, a temporary one, a deprecated one, a ULA, the
// link-local one, and a stable address on a second interface (a VPN).
const ifInet6 = `2a0280000077000102161efffe000010 02 40 00 00     eth0
2a020000000000000000000000000001 01 80 00 80       lo
2a02800000770001a1b2c3d4e5f60718 02 40 00 01     eth0
2a028000007700010000000000000099 02 40 00 20     eth0
fd000000000000000216 1efffe000010 02 40 00 00     eth0
fd00000000000000021 61efffe0000aa 02 40 00 00     eth0
fd0000000000000002161efffe000010 02 40 00 00     eth0
fe8000000000000002161efffe000010 02 40 20 80     eth0
00000000000000000000000000000001 01 80 10 80       lo
2001067c2e8000010000000000000005 05 40 00 80     wg0
`

// TestChooseSelfIPv6 chooses the stable global address on the interface
// toward the gateway, passing over the temporary, deprecated and unique
// local ones, and says so.
func TestChooseSelfIPv6(t *testing.T) {
	addrs := parseIfInet6(strings.NewReader(ifInet6))
	got := chooseSelf6(addrs, []string{"eth0", "wg0"})
	if got.Addr.String() != "2a02:8000:77:1:216:1eff:fe00:10" || got.Interface != "eth0" {
		t.Fatalf("chose %v on %s, want 2a02:8000:77:1:216:1eff:fe00:10 on eth0 (%s)", got.Addr, got.Interface, got.Why)
	}
	for _, want := range []string{"stable global address on eth0", "of 2 stable global addresses, the lowest on the interface toward the gateway",
		"1 temporary privacy address", "1 deprecated or tentative address", "1 unique local address"} {
		if !strings.Contains(got.Why, want) {
			t.Errorf("why %q does not say %q", got.Why, want)
		}
	}
	if other := chooseSelf6(addrs, []string{"wg0"}); other.Interface != "wg0" {
		t.Errorf("with wg0 toward the gateway chose %v on %s", other.Addr, other.Interface)
	}
}

// TestChooseSelfIPv6None: a host with only temporary, ULA and link-local
// addresses has no address for a pinhole, and is told what to check.
func TestChooseSelfIPv6None(t *testing.T) {
	addrs := parseIfInet6(strings.NewReader(`2a02800000770001a1b2c3d4e5f60718 02 40 00 01     eth0
fd0000000000000002161efffe000010 02 40 00 00     eth0
fe8000000000000002161efffe000010 02 40 20 80     eth0
`))
	got := chooseSelf6(addrs, []string{"eth0"})
	if got.Addr.IsValid() || !strings.Contains(got.Why, "no stable global IPv6 address; passed over: 1 temporary") || !strings.Contains(got.Why, "SLAAC or DHCPv6") {
		t.Errorf("got %v, %q", got.Addr, got.Why)
	}
}

// TestParseDefaultRoute6 finds the default route's interface in
// /proc/net/ipv6_route, not a ::/0 without next hop (an unreachable route).
func TestParseDefaultRoute6(t *testing.T) {
	routes := `00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
2a028000007700010000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0
`
	if got := parseDefaultRoute6(strings.NewReader(routes)); got != "eth0" {
		t.Errorf("default route on %q, want eth0", got)
	}
}
