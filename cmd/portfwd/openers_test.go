package main

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

// countingOpeners stand for UPnP (silent, as on a router with it off),
// PCP and NAT-PMP, and count every Open of each.
type countingOpeners struct{ upnp, pcp, natpmp atomic.Int32 }

func (c *countingOpeners) openers(openOptions) []forward.Opener {
	open := func(n *atomic.Int32, props forward.Properties) func(context.Context, bool) (forward.Backend, error) {
		return func(ctx context.Context, _ bool) (forward.Backend, error) {
			n.Add(1)
			if props.Name == "upnp" {
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return propsBackend{forwardtest.NewMemory(lanHost), props}, nil
		}
	}
	return []forward.Opener{
		{Name: "upnp", Detect: true, Open: open(&c.upnp, forward.Properties{Name: "upnp"})},
		{Name: "pcp", Detect: true, Open: open(&c.pcp, forward.Properties{Name: "pcp", ListsFromState: true, ThirdParty: forward.ThirdPartyYes})},
		{Name: "natpmp", Detect: true, Open: open(&c.natpmp, forward.Properties{Name: "natpmp", ListsFromState: true})},
	}
}

// propsBackend is an in-memory gateway with the Properties a test needs.
type propsBackend struct {
	*forwardtest.Memory
	props forward.Properties
}

func (b propsBackend) Properties() forward.Properties { return b.props }

var lanHost = netip.MustParseAddr("192.168.1.10")

func TestAutoRemembersInTheCacheDirectory(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	f := testFactory()
	f.Settings.StateDir = t.TempDir()
	var c countingOpeners
	f.Openers = c.openers
	cfg := &forward.Config{Gateway: forward.GatewaySettings{Backend: forward.Auto, Address: "192.0.2.1"}}
	run := func() *forward.Gateway {
		t.Helper()
		g, err := f.open(context.Background(), cfg, accessChange, false, "")
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	if g := run(); g.Backend.Properties().Name != "pcp" || g.Detection.Remembered {
		t.Fatalf("first run chose %s (%+v); want pcp, detected", g.Backend.Properties().Name, g.Detection)
	}
	if _, err := os.Stat(filepath.Join(cache, "portfwd", "auto-192.0.2.1.json")); err != nil {
		t.Errorf("the choice is not beside the UPnP discovery cache: %v", err)
	}
	upnp, natpmp := c.upnp.Load(), c.natpmp.Load()
	if g := run(); !g.Detection.Remembered || c.upnp.Load() != upnp || c.natpmp.Load() != natpmp {
		t.Errorf("second run: %+v, UPnP opened %d more times, NAT-PMP %d; want the remembered pcp alone", g.Detection, c.upnp.Load()-upnp, c.natpmp.Load()-natpmp)
	}
	f.Settings.Rediscover = true
	if g := run(); g.Detection.Remembered || c.upnp.Load() != upnp+1 {
		t.Errorf("--rediscover: %+v, UPnP opened %d more times; want every protocol asked", g.Detection, c.upnp.Load()-upnp)
	}
}
