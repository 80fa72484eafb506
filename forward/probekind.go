package forward

import (
	"slices"
	"strings"
)

// ProbeKind names how a rule is checked from outside: a TCP connect, a
// datagram that must be answered, or a server's own protocol. The catalog
// names one per service; a rule may override it with probe:. Package probe
// implements every kind listed here, and its tests check that it does.
type ProbeKind string

// The kinds of probe.
const (
	ProbeTCP              ProbeKind = "tcp"               // a TCP connect
	ProbeUDP              ProbeKind = "udp"               // a datagram that must be answered
	ProbeMinecraftJava    ProbeKind = "minecraft-java"    // server list ping, legacy 0xFE fallback
	ProbeMinecraftBedrock ProbeKind = "minecraft-bedrock" // RakNet unconnected ping
	ProbeA2S              ProbeKind = "a2s"               // Source engine A2S_INFO
	ProbeHTTP             ProbeKind = "http"              // GET /
	ProbeHTTPS            ProbeKind = "https"             // GET / over TLS, certificate not verified
)

// ProbeKinds lists every kind, in the order portfwd shows them.
func ProbeKinds() []ProbeKind {
	return []ProbeKind{ProbeTCP, ProbeUDP, ProbeMinecraftJava, ProbeMinecraftBedrock, ProbeA2S, ProbeHTTP, ProbeHTTPS}
}

// Known reports whether k is one of ProbeKinds.
func (k ProbeKind) Known() bool { return slices.Contains(ProbeKinds(), k) }

// Network is the transport protocol k runs over. A rule only keeps its
// service's probe when it still forwards that protocol: a Minecraft status
// ping cannot travel over a UDP-only rule.
func (k ProbeKind) Network() Protocol {
	switch k {
	case ProbeUDP, ProbeMinecraftBedrock, ProbeA2S:
		return UDP
	}
	return TCP
}

// probeKindList is every kind's name, sorted, for messages.
func probeKindList() string {
	names := make([]string, 0, len(ProbeKinds()))
	for _, k := range ProbeKinds() {
		names = append(names, string(k))
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
