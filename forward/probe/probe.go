package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// Kind names an application probe: forward.ProbeKind, which lists them
// all. Every kind has a prober in Run; TestProbersCoverKinds checks it.
type Kind = forward.ProbeKind

// The probes portfwd speaks.
const (
	TCP              = forward.ProbeTCP
	UDP              = forward.ProbeUDP
	MinecraftJava    = forward.ProbeMinecraftJava
	MinecraftBedrock = forward.ProbeMinecraftBedrock
	A2S              = forward.ProbeA2S
	HTTP             = forward.ProbeHTTP
	HTTPS            = forward.ProbeHTTPS
)

// Kinds lists every probe kind.
func Kinds() []Kind { return forward.ProbeKinds() }

// Info is what a server said about itself, when its protocol carries it.
type Info struct {
	Name       string `json:"name,omitempty"`    // MOTD (Minecraft) or server name (A2S)
	Version    string `json:"version,omitempty"` // game or server version
	Map        string `json:"map,omitempty"`     // A2S
	Players    int    `json:"players"`
	MaxPlayers int    `json:"max_players"`
	Status     int    `json:"status,omitempty"` // HTTP status code
}

// Result is what one probe learned.
type Result struct {
	Kind     Kind
	Addr     netip.AddrPort
	Answered bool          // the server answered in its protocol (tcp: the connection was accepted)
	Latency  time.Duration // round trip of the answer (Minecraft Java: ping/pong)
	Info     Info
	Err      error // why not, when !Answered; wraps one of the errors below
}

// Why a probe got no answer. Callers branch on these with errors.Is.
var (
	// ErrRefused: the host answered that nothing listens there (TCP RST,
	// ICMP port unreachable).
	ErrRefused = errors.New("connection refused: nothing is listening")
	// ErrNoAnswer: nothing came back before the deadline. For UDP this is
	// all an unanswered port ever says: it is never reported open.
	ErrNoAnswer = errors.New("no answer before the deadline")
	// ErrBadAnswer: something answered, but not in the expected protocol
	// (another service on the port, or a broken server).
	ErrBadAnswer = errors.New("answer is not in the expected protocol")
	// ErrNoRoute: the probe could not be sent, or was answered by "no
	// route": the address is on none of this machine's networks
	// (ENETUNREACH), or no host answered for it on its own network
	// (EHOSTUNREACH). It refines ErrNoAnswer, which it also matches.
	ErrNoRoute = errors.New("no route to the address")
)

// Dialer opens connections; tests and the probe server choose where from.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Options tune Run.
type Options struct {
	// Timeout bounds the whole probe; 0 means DefaultTimeout.
	Timeout time.Duration
	// Dialer opens the connection; nil means a net.Dialer.
	Dialer Dialer
}

// DefaultTimeout is long enough for a game server across the internet and
// short enough that a user checking twenty rules is not kept waiting.
const DefaultTimeout = 3 * time.Second
