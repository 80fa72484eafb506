package forward_test

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/forward"
)

// TestExampleConfig loads the example of every catalog service: it must be
// a valid config forwarding exactly the service's ports to this PC.
func TestExampleConfig(t *testing.T) {
	self := netip.MustParseAddr("192.168.1.10")
	for _, svc := range forward.Services() {
		b, err := forward.ExampleConfig(svc.Name)
		if err != nil {
			t.Fatalf("%s: %v", svc.Name, err)
		}
		cfg, _, err := forward.Load(context.Background(), "portfwd.yaml", b, forward.LoadOptions{})
		if err != nil {
			t.Errorf("example %s does not load: %v\n%s", svc.Name, err, b)
			continue
		}
		ms := cfg.Desired(forward.Hosts{Self: self}, forward.Properties{})
		if want := svc.Ports.Len() * len(svc.Protocols); len(ms) != want {
			t.Errorf("example %s: %d forwards, want %d", svc.Name, len(ms), want)
		}
		for _, m := range ms {
			if !slices.Contains(svc.Protocols, m.Key.Protocol) || m.InternalHost != self || m.Key.ExternalPort < svc.Ports.First || m.Key.ExternalPort > svc.Ports.Last {
				t.Errorf("example %s: forward %+v is not one of the service's (%v %s) to this PC", svc.Name, m, svc.Protocols, svc.Ports)
			}
		}
		if !strings.HasPrefix(string(b), "# ") {
			t.Errorf("example %s does not start with a comment:\n%s", svc.Name, b)
		}
	}
}

func TestExampleConfigUnknown(t *testing.T) {
	for name, want := range map[string]string{
		"minecraft": `did you mean "minecraft-bedrock" or "minecraft-java"?`,
		"valhiem":   `did you mean "valheim"?`,
		"quake":     `unknown service "quake" (portfwd services lists them)`,
	} {
		_, err := forward.ExampleConfig(name)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ExampleConfig(%q) = %v, want an error with %q", name, err, want)
		}
	}
}
