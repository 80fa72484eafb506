package docker

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// watchedActions are the container events that may change the forwards.
var watchedActions = []string{"start", "stop", "die", "destroy", "rename"}

// engineAPI is the part of the Docker Engine API's client the source
// uses: reads only, so a read-only socket proxy serves it.
type engineAPI interface {
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	NetworkList(ctx context.Context, options network.ListOptions) ([]network.Summary, error)
	Events(ctx context.Context, options events.ListOptions) (<-chan events.Message, <-chan error)
}

// apiEngine is Engine over the Docker Engine API's Go client.
type apiEngine struct{ api engineAPI }

var _ Engine = apiEngine{}

// NewEngine connects to the engine DOCKER_HOST names (with
// DOCKER_API_VERSION, DOCKER_CERT_PATH and DOCKER_TLS_VERIFY), else to
// /var/run/docker.sock, negotiating the API version with the engine at
// the first request (Docker 20.10 speaks 1.41). It sends nothing yet.
func NewEngine() (Engine, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker: %w (set DOCKER_HOST, e.g. unix:///var/run/docker.sock)", err)
	}
	return apiEngine{api: c}, nil
}

// Containers implements Engine.
func (e apiEngine) Containers(ctx context.Context) ([]Container, error) {
	nets, err := e.api.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("docker: listing networks: %w", err)
	}
	drivers := make(map[string]string, len(nets))
	for _, n := range nets {
		drivers[n.Name] = n.Driver
	}
	list, err := e.api.ContainerList(ctx, container.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("docker: listing containers: %w", err)
	}
	out := make([]Container, 0, len(list))
	for _, c := range list {
		out = append(out, fromSummary(c, drivers))
	}
	return out, nil
}

// fromSummary is the engine's listing of one container as a Container.
func fromSummary(c container.Summary, drivers map[string]string) Container {
	out := Container{ID: c.ID, Labels: c.Labels}
	if len(c.Names) > 0 {
		out.Name = strings.TrimPrefix(c.Names[0], "/")
	}
	for _, p := range c.Ports {
		out.Ports = append(out.Ports, Port{HostIP: p.IP, HostPort: p.PublicPort, ContainerPort: p.PrivatePort, Protocol: p.Type})
	}
	if c.NetworkSettings != nil {
		for name, ep := range c.NetworkSettings.Networks {
			n := Network{Name: name, Driver: drivers[name]}
			if ep != nil {
				n.Addr, _ = netip.ParseAddr(ep.IPAddress)
			}
			out.Networks = append(out.Networks, n)
		}
	}
	return out
}

// Events implements Engine.
func (e apiEngine) Events(ctx context.Context) (<-chan Event, <-chan error) {
	f := filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)))
	for _, a := range watchedActions {
		f.Add("event", a)
	}
	msgs, errs := e.api.Events(ctx, events.ListOptions{Filters: f})
	out := make(chan Event)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-msgs:
				if !ok {
					return
				}
				select {
				case out <- Event{Action: string(m.Action), Container: m.Actor.Attributes["name"]}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, errs
}
