package docker

import (
	"context"
	"net/netip"
)

// Engine is what the source reads of a container engine. Its rules:
//   - Containers lists the running containers only, each with its
//     labels, published ports and networks; it never changes anything.
//   - Events delivers a value on every container event that may change
//     the forwards (start, stop, die, destroy, rename) until ctx ends;
//     the error channel carries why the stream ended early (the engine
//     restarted, the socket went away), after which the caller subscribes
//     again.
type Engine interface {
	Containers(ctx context.Context) ([]Container, error)
	Events(ctx context.Context) (<-chan Event, <-chan error)
}

// Container is one running container as the source needs it.
type Container struct {
	ID, Name string // Name without the leading "/"
	Labels   map[string]string
	Ports    []Port
	Networks []Network
}

// Port is one port of the container: HostPort on the host forwards to
// ContainerPort in the container; HostPort 0 is a port exposed but not
// published. HostIP is the host address it is bound to ("" or 0.0.0.0 or
// :: for all).
type Port struct {
	HostIP        string
	HostPort      uint16
	ContainerPort uint16
	Protocol      string // "tcp" or "udp"
}

// Network is one network the container is attached to, with the driver
// that runs it ("bridge", "macvlan", "ipvlan", …) and the container's
// IPv4 address on it.
type Network struct {
	Name, Driver string
	Addr         netip.Addr
}

// Event is one container event.
type Event struct {
	Action, Container string // "start", "die", …; the container's name
}

// onLAN reports whether the network gives the container an address of its
// own on the LAN (macvlan, ipvlan): the router then forwards to that
// address, not to the Docker host.
func (n Network) onLAN() bool {
	return (n.Driver == "macvlan" || n.Driver == "ipvlan") && n.Addr.Is4()
}
