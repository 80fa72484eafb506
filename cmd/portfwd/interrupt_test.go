package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/forward"
)

// silentFactory is a factory whose one gateway never answers: it waits
// for the end of its context.
func silentFactory(out, errb *bytes.Buffer) *factory {
	f := newFactory(IOStreams{Out: out, ErrOut: errb})
	f.Memory = nil
	f.Openers = func(openOptions) []forward.Opener {
		return []forward.Opener{{Name: "silent", Detect: true, Open: func(ctx context.Context, _ bool) (forward.Backend, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}}}
	}
	return f
}

// TestInterruptedSaysSo: a run stopped by Ctrl-C says "interrupted" and
// exits 130, whatever it was waiting for: discovery (it said "no gateway
// found", then "context canceled") or a probe (it said "no answer before
// the deadline", a verdict on a server that was never given the time).
func TestInterruptedSaysSo(t *testing.T) {
	state := t.TempDir()
	t.Setenv("PORTFWD_STATE_DIR", state)
	ln, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := writeConfig(t, "rules:\n  - {name: mc, service: minecraft-java}\n")
	for _, args := range [][]string{
		{"plan", "--gateway", "192.0.2.1", cfg},
		{"probe", "--kind", "minecraft-java", ln.Addr().String()},
		{"probe", "-o", "json", ln.Addr().String()},
	} {
		var out, errb bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // Ctrl-C before anything answered
		code := run(ctx, args, silentFactory(&out, &errb))
		msg := errb.String()
		if code != exitInterrupted || !strings.Contains(msg, "interrupted") {
			t.Errorf("%v: exit %d, stderr %q; want %d and interrupted", args, code, msg, exitInterrupted)
		}
		for _, wrong := range []string{"no gateway found", "context canceled", "no answer", "deadline"} {
			if strings.Contains(msg+out.String(), wrong) {
				t.Errorf("%v: says %q: stdout %q, stderr %q", args, wrong, out.String(), msg)
			}
		}
	}
}

// TestDaemonChecksMetricsFirst: a bad or taken --metrics address is the
// daemon's first word, before any pass (it logged a failed reconcile
// first).
func TestDaemonChecksMetricsFirst(t *testing.T) {
	t.Setenv("PORTFWD_STATE_DIR", t.TempDir())
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := writeConfig(t, "rules:\n  - {name: mc, service: minecraft-java}\n")
	for _, addr := range []string{"127.0.0.1:99999", "localhost", taken.Addr().String()} {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"daemon", "--metrics", addr, cfg}, silentFactory(&out, &errb))
		if code != exitError || !strings.Contains(errb.String(), "--metrics") || strings.Contains(errb.String(), "reconcile") {
			t.Errorf("--metrics %s: exit %d, stderr %q; want exit 1 naming --metrics and no pass", addr, code, errb.String())
		}
	}
}

// TestAdviseAddress: the advice to name the router comes once, and only
// when no address was given.
func TestAdviseAddress(t *testing.T) {
	silent := forward.NoGateway(errors.New("the gateway answered none of upnp"))
	noRoute := forward.NoGateway(errors.New("this host has no default gateway to ask (no route); set gateway.address (or --gateway) to the router's LAN address"))
	for _, tt := range []struct {
		err     error
		address string
		advised int
	}{
		{silent, "", 1},
		{silent, "192.0.2.1", 0},
		{noRoute, "", 1},
		{fmt.Errorf("detecting: %w", context.Canceled), "", 0},
		{errors.New("gateway.backend \"x\" is not available"), "", 0},
	} {
		err := adviseAddress(tt.err, forward.GatewaySettings{Address: tt.address})
		if n := strings.Count(err.Error(), "gateway.address"); n != tt.advised || !errors.Is(err, tt.err) {
			t.Errorf("adviseAddress(%q, address %q) = %q: advised %d times, want %d", tt.err, tt.address, err, n, tt.advised)
		}
	}
}
