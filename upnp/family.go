package upnp

import (
	"strings"

	"github.com/huin/goupnp"
)

// A routerFamily is a kind of router whose refusals have a fix of its own,
// in its own settings pages. Routers say what they are in the root
// description (manufacturer, modelName, friendlyName) and in the HTTP
// Server header of its answer; both are matched case-insensitively.
type routerFamily struct {
	Name string
	// markers: any of them in the description's manufacturer, model or
	// friendly name, or in the Server header, names the family.
	markers []string
	// ownRefused is the fix when the router refuses this host a mapping
	// to itself (606 Action not authorized, or a secure-mode 718 for the
	// requesting host): switched off for this device, or outside the
	// router's UPnP rules.
	ownRefused string
}

// families are the router families portfwd knows the fixes of, most
// specific first. The facts are from their manuals and from the users'
// reports collected with the replay corpus (testdata/routers).
var families = []routerFamily{
	{
		Name:    "FRITZ!Box",
		markers: []string{"fritz!box", "avm berlin", "avm gmbh"},
		// FRITZ!OS answers 606 while the requesting device may not open
		// ports, which is the default; the switch is per device and moved
		// between FRITZ!OS versions (AVM knowledge base article 894).
		ownRefused: `allow this device to open ports in the FRITZ!Box: on current FRITZ!OS open Home Network > Network > Network Connections, edit this device and tick "Permit this device to create port sharings via PCP or UPnP"; on older FRITZ!OS, Internet > Permit Access > Port Sharing, edit the device and tick "Permit independent port sharing for this device"; then run portfwd again`,
	},
	{
		Name:       "MikroTik",
		markers:    []string{"mikrotik", "routeros"},
		ownRefused: "in RouterOS (WinBox or WebFig) open IP > UPnP: tick Enabled, and under Interfaces add the WAN interface as external and the LAN bridge as internal",
	},
	{
		Name:    "miniupnpd",
		markers: []string{"miniupnpd", "openwrt", "dd-wrt", "pfsense", "opnsense", "tomato"},
		// miniupnpd answers 606 (IGD:2) or 718 (IGD:1) for a port its
		// allow/deny rules exclude; routers built on it expose them.
		ownRefused: "the router's UPnP rules (miniupnpd's allow/deny list) exclude this port or host: on OpenWrt, Network > UPnP > ACLs; on pfSense/OPNsense, Services > UPnP & NAT-PMP > ACL entries; on DD-WRT, NAT/QoS > UPnP; allow it there, or pick a port the router allows (often 1024 and up)",
	},
}

// genericOwnRefused is the fix for a router of no known family.
const genericOwnRefused = "allow it in the router's UPnP settings (some routers allow UPnP per device, or only for some ports), pick a port the router allows (often 1024 and up), or, when the router is a Linux box you run, use portfwd's iptables backend on it"

// familyOf names the family of the router with root description root and
// HTTP Server header server; "" when it is none of families.
func familyOf(root *goupnp.RootDevice, server string) string {
	id := strings.ToLower(strings.Join([]string{root.Device.Manufacturer, root.Device.ModelName,
		root.Device.FriendlyName, server}, "\n"))
	for _, f := range families {
		for _, m := range f.markers {
			if strings.Contains(id, m) {
				return f.Name
			}
		}
	}
	return ""
}

// ownRefusedFix is the fix of family name for a refused mapping to the
// requesting host.
func ownRefusedFix(name string) string {
	for _, f := range families {
		if f.Name == name {
			return f.ownRefused
		}
	}
	return genericOwnRefused
}
