package forward

import (
	"slices"
	"strings"
)

// Service is a catalog entry: the ports a piece of commonly self-hosted
// software listens on, so a rule can say "service: valheim" instead of
// remembering that Valheim wants 2456-2457/udp.
type Service struct {
	Name      string
	Protocols []Protocol
	Ports     PortRange
	// Probe is how package probe checks the service answers.
	Probe       ProbeKind
	Description string
}

var (
	tcpOnly = []Protocol{TCP}
	udpOnly = []Protocol{UDP}
	tcpUDP  = []Protocol{TCP, UDP}
)

// catalog is kept sorted by name; TestCatalog checks it.
//
// Game servers whose query port sits right after the game port (Valheim,
// Enshrouded, V Rising) are listed as one range so the query port is forwarded
// too: without it the server does not show in the in-game browser.
var catalog = []Service{
	{"7-days-to-die", tcpUDP, PortRange{26900, 26902}, "a2s", "7 Days to Die server"},
	{"cs2", tcpUDP, PortRange{27015, 27015}, "a2s", "Counter-Strike 2 dedicated server"},
	{"enshrouded", udpOnly, PortRange{15636, 15637}, "a2s", "Enshrouded server (game and query port)"},
	{"factorio", udpOnly, PortRange{34197, 34197}, "udp", "Factorio server"},
	{"home-assistant", tcpOnly, PortRange{8123, 8123}, "http", "Home Assistant web interface"},
	{"http", tcpOnly, PortRange{80, 80}, "http", "Web server (HTTP)"},
	{"https", tcpOnly, PortRange{443, 443}, "https", "Web server (HTTPS)"},
	{"jellyfin", tcpOnly, PortRange{8096, 8096}, "http", "Jellyfin media server"},
	{"minecraft-bedrock", udpOnly, PortRange{19132, 19132}, "minecraft-bedrock", "Minecraft: Bedrock Edition server"},
	{"minecraft-java", tcpOnly, PortRange{25565, 25565}, "minecraft-java", "Minecraft: Java Edition server"},
	{"mumble", tcpUDP, PortRange{64738, 64738}, "tcp", "Mumble voice chat server"},
	{"openvpn", udpOnly, PortRange{1194, 1194}, "udp", "OpenVPN server"},
	{"palworld", udpOnly, PortRange{8211, 8211}, "udp", "Palworld dedicated server"},
	{"plex", tcpOnly, PortRange{32400, 32400}, "http", "Plex Media Server"},
	{"project-zomboid", udpOnly, PortRange{16261, 16262}, "udp", "Project Zomboid server"},
	{"rust", udpOnly, PortRange{28015, 28015}, "udp", "Rust game server"},
	{"satisfactory", tcpUDP, PortRange{7777, 7777}, "tcp", "Satisfactory dedicated server"},
	{"ssh", tcpOnly, PortRange{22, 22}, "tcp", "SSH server"},
	{"syncthing", tcpUDP, PortRange{22000, 22000}, "tcp", "Syncthing file sync"},
	{"teamspeak", udpOnly, PortRange{9987, 9987}, "udp", "TeamSpeak 3 voice server"},
	{"terraria", tcpOnly, PortRange{7777, 7777}, "tcp", "Terraria server"},
	{"v-rising", udpOnly, PortRange{9876, 9877}, "a2s", "V Rising server (game and query port)"},
	{"valheim", udpOnly, PortRange{2456, 2457}, "a2s", "Valheim server (game and query port)"},
	{"wireguard", udpOnly, PortRange{51820, 51820}, "udp", "WireGuard VPN"},
}

// Services returns the catalog, sorted by name. The caller may modify the
// result.
func Services() []Service {
	out := make([]Service, len(catalog))
	for i, s := range catalog {
		s.Protocols = slices.Clone(s.Protocols)
		out[i] = s
	}
	return out
}

// LookupService finds a catalog entry by name, ignoring case.
func LookupService(name string) (Service, bool) {
	name = strings.ToLower(strings.TrimSpace(name))
	i, found := slices.BinarySearchFunc(catalog, name, func(s Service, n string) int {
		return strings.Compare(s.Name, n)
	})
	if !found {
		return Service{}, false
	}
	s := catalog[i]
	s.Protocols = slices.Clone(s.Protocols)
	return s, true
}

// serviceNames lists the catalog's names, for suggestions.
func serviceNames() []string {
	names := make([]string, len(catalog))
	for i, s := range catalog {
		names[i] = s.Name
	}
	return names
}
