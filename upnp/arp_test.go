package upnp

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGatewayMAC(t *testing.T) {
	table := `IP address       HW type     Flags       HW address            Mask     Device
192.168.1.1      0x1         0x2         aa:bb:cc:dd:ee:01     *        eth0
192.168.1.7      0x1         0x0         00:00:00:00:00:00     *        eth0
192.168.1.9      0x1         0x2         00:00:00:00:00:00     *        eth0
`
	old := arpTable
	arpTable = filepath.Join(t.TempDir(), "arp")
	t.Cleanup(func() { arpTable = old })
	if err := os.WriteFile(arpTable, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]string{"192.168.1.1": "aabbccddee01", "192.168.1.7": "", "192.168.1.9": "", "10.0.0.1": ""} {
		if got := gatewayMAC(netip.MustParseAddr(addr)); got != want {
			t.Errorf("gatewayMAC(%s) = %q, want %q", addr, got, want)
		}
	}
	if p := cachePath("/c", netip.MustParseAddr("192.168.1.1")); !strings.HasSuffix(p, "upnp-192.168.1.1-aabbccddee01.json") {
		t.Errorf("cachePath = %s; want the MAC in the name", p)
	}
	if p := cachePath("/c", netip.MustParseAddr("10.0.0.1")); !strings.HasSuffix(p, "upnp-10.0.0.1.json") {
		t.Errorf("cachePath = %s; want the address alone", p)
	}
}
