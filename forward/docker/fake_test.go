package docker

import (
	"context"
	"net/netip"
	"sync"
)

// fakeEngine is an Engine whose containers a test sets and whose events it
// sends.
type fakeEngine struct {
	mu         sync.Mutex
	containers []Container
	err        error
	events     chan Event
	reads      int
}

func newFake(cs ...Container) *fakeEngine {
	return &fakeEngine{containers: cs, events: make(chan Event)}
}

func (f *fakeEngine) set(cs ...Container) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.containers = cs
}

func (f *fakeEngine) Containers(ctx context.Context) ([]Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.err != nil {
		return nil, f.err
	}
	return append([]Container(nil), f.containers...), nil
}

func (f *fakeEngine) Events(ctx context.Context) (<-chan Event, <-chan error) {
	return f.events, make(chan error)
}

// bridged is a container on the default bridge publishing ports.
func bridged(name string, labels map[string]string, ports ...Port) Container {
	return Container{ID: name + "-id", Name: name, Labels: labels, Ports: ports,
		Networks: []Network{{Name: "bridge", Driver: "bridge", Addr: netip.MustParseAddr("172.17.0.2")}}}
}

// pub is the port published as -p host:ctr/proto, on all addresses.
func pub(host, ctr uint16, proto string) Port {
	return Port{HostIP: "0.0.0.0", HostPort: host, ContainerPort: ctr, Protocol: proto}
}
