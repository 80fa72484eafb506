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

// Family is the address family of a mapping. On IPv4 a mapping is a port
// forward (NAT from the gateway's public address to a LAN host); on IPv6
// there is no NAT, and a mapping is a pinhole: the gateway's firewall lets
// the internet reach the LAN host's own global address on that port. The
// zero value is IPv4, so every mapping made before families existed is one.
type Family uint8

// The address families.
const (
	IPv4 Family = iota
	IPv6
)

// FamilyOf is the family of address a: IPv6 for an IPv6 address that is
// not an IPv4-mapped one, else IPv4.
func FamilyOf(a netip.Addr) Family {
	if a.Is6() && !a.Is4In6() {
		return IPv6
	}
	return IPv4
}

// String is "ipv4" or "ipv6", as the config's family: key spells it.
func (f Family) String() string {
	if f == IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

// MarshalText writes the family as String does.
func (f Family) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText reads "ipv4" or "ipv6"; an empty text is IPv4, as in state
// files written before families existed.
func (f *Family) UnmarshalText(b []byte) error {
	switch string(b) {
	case "", "ipv4":
		*f = IPv4
	case "ipv6":
		*f = IPv6
	default:
		return fmt.Errorf("unknown address family %q (want ipv4 or ipv6)", b)
	}
	return nil
}

// Key identifies a mapping on a gateway: one external port of one protocol
// in one address family. Two mappings with the same Key cannot coexist on
// a gateway; an IPv4 forward and an IPv6 pinhole of the same port can.
type Key struct {
	Protocol     Protocol
	ExternalPort uint16
	// Family is omitted from JSON for IPv4, so that state files and
	// output read the same as before families existed.
	Family Family `json:",omitempty"`
}

// String renders the key as "tcp/25565", or "tcp6/25565" for an IPv6
// pinhole (as netstat names IPv6 sockets).
func (k Key) String() string {
	if k.Family == IPv6 {
		return fmt.Sprintf("%s6/%d", k.Protocol, k.ExternalPort)
	}
	return fmt.Sprintf("%s/%d", k.Protocol, k.ExternalPort)
}

// Compare orders keys by protocol, then port, then family (IPv4 first), so
// that a rule's forward and pinhole sit side by side: -1, 0 or +1 as in
// cmp.Compare.
func (k Key) Compare(o Key) int {
	if c := cmp.Compare(k.Protocol, o.Protocol); c != 0 {
		return c
	}
	if c := cmp.Compare(k.ExternalPort, o.ExternalPort); c != 0 {
		return c
	}
	return cmp.Compare(k.Family, o.Family)
}

// Mapping is one port forward as it exists (or should exist) on a gateway.
type Mapping struct {
	Key
	InternalHost netip.Addr // the LAN host the gateway forwards to
	InternalPort uint16
	// Description is the text stored on the gateway. Mappings portfwd owns
	// carry Tag(config, rule) here; see OwnerOf.
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

// TagPrefix starts the description of every mapping portfwd makes:
// "pf:<config>:<rule>" (Tag). It is short because routers truncate
// descriptions (some keep 32 characters): the config's name (at most
// MaxConfigNameLen) always survives, and Diff matches a truncated rule
// name by prefix (SameDescription).
const TagPrefix = "pf:"

// LegacyTagPrefix is the tag of portfwd before configs had names:
// "portfwd:<rule>". Such a mapping is adopted by the config that has the
// rule (DiffOptions.Rules), which re-tags it on its next apply.
const LegacyTagPrefix = "portfwd:"

// MaxConfigNameLen bounds a config's name, so that "pf:<name>:" (16
// characters at most) survives any truncation routers are known to make.
const MaxConfigNameLen = 12

// Tag is the description portfwd stores with the mappings of rule in the
// config named config.
func Tag(config, rule string) string { return TagPrefix + config + ":" + rule }

// Owner is who a mapping belongs to, read from its description.
type Owner struct {
	// Config is the config's name; "" for a legacy tag (LegacyTagPrefix).
	Config string
	// Rule is the rule's name, cut short when the router truncated the
	// description.
	Rule string
}

// Legacy reports whether the tag predates config names.
func (o Owner) Legacy() bool { return o.Config == "" }

// OwnerOf reads a description's ownership tag, and whether it carries one
// at all: "pf:mc:minecraft" is config "mc", rule "minecraft";
// "portfwd:minecraft" (and "portfwd:minecraft some text") is rule
// "minecraft" of no config (Legacy). A description truncated inside the
// config's name, or whose name is not one a config may have
// (CheckConfigName), carries no tag.
func OwnerOf(description string) (Owner, bool) {
	if rest, ok := strings.CutPrefix(description, TagPrefix); ok {
		config, rule, found := strings.Cut(rest, ":")
		ok := found && rule != "" && len(config) <= MaxConfigNameLen && namePattern.MatchString(config)
		if !ok {
			return Owner{}, false
		}
		return Owner{Config: config, Rule: rule}, true
	}
	rest, ok := strings.CutPrefix(description, LegacyTagPrefix)
	if !ok {
		return Owner{}, false
	}
	rule, _, _ := strings.Cut(rest, " ")
	return Owner{Rule: rule}, rule != ""
}

// Owner is the rule that owns m, or "" when m is not portfwd's.
func (m Mapping) Owner() string {
	o, _ := OwnerOf(m.Description)
	return o.Rule
}

// minTruncated is the shortest description taken for a truncation of a
// longer one. Routers that truncate keep 32 characters, some 31 (a
// C string's NUL in a 32-byte field); a shorter description that is a
// prefix of the one asked is more likely another rule ("pf:mc:web" and
// "pf:mc:web-2") than a cut one.
const minTruncated = 24

// SameDescription reports whether two descriptions are the same, allowing
// for a router that cut one of them short: "pf:mc:minecraft-ja" (kept)
// and "pf:mc:minecraft-java-server" (asked) are the same.
func SameDescription(a, b string) bool {
	if a == b {
		return true
	}
	short, long := a, b
	if len(short) > len(long) {
		short, long = long, short
	}
	return len(short) >= minTruncated && strings.HasPrefix(long, short)
}

// Adopts reports whether writing want over holder, both tagged and to the
// same host, keeps the key with its owner: the same config (a refresh, or
// a rule renamed in it), or an older portfwd's tag for the same rule.
// Backends that check a key's holder before writing let such a write
// through; any other holder is someone else's.
func Adopts(holder, want Mapping) bool {
	h, ok1 := OwnerOf(holder.Description)
	w, ok2 := OwnerOf(want.Description)
	if !ok1 || !ok2 || holder.InternalHost != want.InternalHost {
		return false
	}
	if h.Legacy() {
		return h.Rule == w.Rule
	}
	return h.Config == w.Config
}

// SameTarget reports whether m and o send traffic to the same place for
// the same owner: internal host, internal port and description. The lease,
// and whether the mapping is switched on, do not count.
func (m Mapping) SameTarget(o Mapping) bool {
	return m.InternalHost == o.InternalHost && m.InternalPort == o.InternalPort && SameDescription(m.Description, o.Description)
}

// String renders m as "tcp/25565 -> 192.168.1.10:25565", or
// "tcp6/25565 -> [2a02:8000:77:1::10]:25565" for a pinhole.
func (m Mapping) String() string {
	if !m.InternalHost.IsValid() {
		return fmt.Sprintf("%s -> (no address):%d", m.Key, m.InternalPort)
	}
	return fmt.Sprintf("%s -> %s", m.Key, netip.AddrPortFrom(m.InternalHost, m.InternalPort))
}

// LeaseString renders a lease for people: "permanent" or a rounded duration.
func LeaseString(d time.Duration) string {
	if d == 0 {
		return "permanent"
	}
	return d.Round(time.Second).String()
}
