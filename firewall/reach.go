package firewall

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// HostProblem implements forward.HostChecker. The router reaches host
// when host is on one of its LAN-side networks, or when a route other
// than the default one leads to it through an interface other than the
// WAN one (a LAN behind another router). Otherwise a forward to it would
// be sent out of the WAN interface, or nowhere: that is the problem.
// "" when it reaches host, or cannot tell (no interface list, no routes).
func (f *Firewall) HostProblem(host netip.Addr) string {
	if !host.IsValid() || !host.Is4() {
		return ""
	}
	lans, err := f.lanPrefixes()
	if err != nil {
		return ""
	}
	if _, ok := subnetOf(lans, host); ok {
		return ""
	}
	routed, err := f.routedVia(host)
	if err != nil || routed {
		return ""
	}
	nets := make([]string, len(lans))
	for i, p := range lans {
		nets[i] = p.String()
	}
	where := "none"
	if len(nets) > 0 {
		where = strings.Join(nets, ", ")
	}
	return fmt.Sprintf("%s is on none of this router's LAN networks (%s) and no route but the default one (out of %s) leads to it: forwards to it cannot arrive",
		host, where, f.wan)
}

// routedVia reports whether a route of /proc/net/route other than the
// default one covers host through an interface other than the WAN one.
func (f *Firewall) routedVia(host netip.Addr) (bool, error) {
	b, err := f.sys.readFile(routePath)
	if err != nil {
		return false, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 || fields[0] == f.wan {
			continue
		}
		dst, ok1 := procRouteAddr(fields[1])
		mask, ok2 := procRouteAddr(fields[7])
		if !ok1 || !ok2 || mask == 0 {
			continue // the header, or the default route
		}
		if hostBits(host)&mask == dst&mask {
			return true, nil
		}
	}
	return false, sc.Err()
}

// procRouteAddr reads an address of /proc/net/route, which prints the
// network-order bytes as a number of the host's byte order (reversed on
// x86 and ARM, as they are on a big-endian MIPS router), as a number most
// significant octet first.
func procRouteAddr(s string) (uint32, bool) {
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil || len(s) != 8 {
		return 0, false
	}
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], uint32(v))
	return binary.BigEndian.Uint32(b[:]), true
}

// hostBits is host as a number, most significant octet first.
func hostBits(host netip.Addr) uint32 {
	a := host.As4()
	return binary.BigEndian.Uint32(a[:])
}
