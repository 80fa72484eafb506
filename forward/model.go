package forward

import (
	"cmp"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Protocol is a transport protocol a mapping forwards. Values are lower case;
// backends translate to the wire form (UPnP wants "TCP"/"UDP").
type Protocol string

// The protocols a mapping can carry.
const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// ParseProtocol accepts "tcp" or "udp" in any case.
func ParseProtocol(s string) (Protocol, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "tcp":
		return TCP, nil
	case "udp":
		return UDP, nil
	}
	return "", fmt.Errorf("unknown protocol %q (want tcp or udp)", s)
}

// Key identifies a mapping on a gateway: one external port of one protocol.
// Two mappings with the same Key cannot coexist on a gateway.
type Key struct {
	Protocol     Protocol
	ExternalPort uint16
}

// String renders the key as "tcp/25565".
func (k Key) String() string { return fmt.Sprintf("%s/%d", k.Protocol, k.ExternalPort) }

// Compare orders keys by protocol, then port, for deterministic output:
// -1, 0 or +1 as in cmp.Compare.
func (k Key) Compare(o Key) int {
	if c := cmp.Compare(k.Protocol, o.Protocol); c != 0 {
		return c
	}
	return cmp.Compare(k.ExternalPort, o.ExternalPort)
}

// Mapping is one port forward as it exists (or should exist) on a gateway.
type Mapping struct {
	Key
	InternalHost netip.Addr // the LAN host the gateway forwards to
	InternalPort uint16
	// Description is the text stored on the gateway. Mappings portfwd owns
	// carry Tag(rule) here; see OwnerOf.
	Description string
	// Lease is the lease duration: requested (desired mappings) or remaining
	// (observed mappings). Zero means permanent.
	Lease   time.Duration
	Enabled bool
	// AnyExternal marks a desired mapping that accepts whatever external
	// port the gateway grants (external_port: any); ExternalPort is then
	// only the port suggested. Observed mappings never set it.
	AnyExternal bool `json:",omitempty"`
	// Hairpin: LAN clients reach the forward through the gateway's public
	// address too (hairpin NAT). Only backends with Properties.Hairpin
	// write or report it.
	Hairpin bool `json:",omitempty"`
}

// TagPrefix marks the mappings portfwd owns, in the gateway's description.
const TagPrefix = "portfwd:"

// Tag is the description portfwd stores with the mappings of rule.
func Tag(rule string) string { return TagPrefix + rule }

// OwnerOf returns the rule named by a description's ownership tag, and
// whether the description carries one at all. "portfwd:minecraft" and
// "portfwd:minecraft some text" both name rule "minecraft".
func OwnerOf(description string) (rule string, ok bool) {
	rest, found := strings.CutPrefix(description, TagPrefix)
	if !found {
		return "", false
	}
	rule, _, _ = strings.Cut(rest, " ")
	return rule, rule != ""
}

// Owner is the rule that owns m, or "" when m is not portfwd's.
func (m Mapping) Owner() string {
	rule, _ := OwnerOf(m.Description)
	return rule
}

// SameTarget reports whether m and o send traffic to the same place for
// the same owner: internal host, internal port and description. The lease,
// and whether the mapping is switched on, do not count.
func (m Mapping) SameTarget(o Mapping) bool {
	return m.InternalHost == o.InternalHost && m.InternalPort == o.InternalPort && m.Description == o.Description
}

// String renders m as "tcp/25565 -> 192.168.1.10:25565".
func (m Mapping) String() string {
	return fmt.Sprintf("%s -> %s", m.Key, netip.AddrPortFrom(m.InternalHost, m.InternalPort))
}

// LeaseString renders a lease for people: "permanent" or a rounded duration.
func LeaseString(d time.Duration) string {
	if d == 0 {
		return "permanent"
	}
	return d.Round(time.Second).String()
}
