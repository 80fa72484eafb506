package upnp

import (
	"bufio"
	"net/netip"
	"os"
	"strings"
)

// arpTable is where Linux lists its neighbours; elsewhere it does not
// exist and the cache is keyed by address alone.
var arpTable = "/proc/net/arp"

// gatewayMAC is the hardware address of gw from the ARP table, without
// colons, or "" when unknown. It keys the discovery cache together with the
// address, because most home routers share a handful of LAN addresses: a
// laptop that moves from one 192.168.1.1 to another must not use the first
// router's entry for the second.
func gatewayMAC(gw netip.Addr) string {
	f, err := os.Open(arpTable)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// IP address  HW type  Flags  HW address  Mask  Device
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[0] != gw.String() || fields[2] == "0x0" {
			continue
		}
		if mac := strings.ReplaceAll(fields[3], ":", ""); strings.Trim(mac, "0") != "" {
			return mac
		}
	}
	return ""
}
