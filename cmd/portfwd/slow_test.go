package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
	"github.com/portfwd/portfwd/upnp"
)

// slowGateway is the in-memory gateway taking delay for every change, as
// a router does whose every AddPortMapping scans its table; a change the
// context ends first fails with the context's error.
type slowGateway struct {
	*forwardtest.Memory
	delay time.Duration
}

func (g *slowGateway) wait(ctx context.Context) error {
	select {
	case <-time.After(g.delay):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Add implements forward.Backend.
func (g *slowGateway) Add(ctx context.Context, m forward.Mapping) (forward.Mapping, error) {
	if err := g.wait(ctx); err != nil {
		return forward.Mapping{}, fmt.Errorf("adding mapping %s: %w", m.Key, err)
	}
	return g.Memory.Add(ctx, m)
}

// slowFactory is a factory whose one backend is gw, writing into out and
// errOut, with errTerminal as the terminal stderr is.
func slowFactory(gw forward.Backend, out, errOut *bytes.Buffer, errTerminal bool) *factory {
	f := newFactory(IOStreams{Out: out, ErrOut: errOut, ErrTerminal: errTerminal})
	f.Openers = func(openOptions) []forward.Opener {
		return []forward.Opener{{Name: "memory", Detect: true, Open: func(context.Context, bool) (forward.Backend, error) { return gw, nil }}}
	}
	return f
}

// TestApplyOutlivesTimeoutOnSlowGateway: --timeout bounds each request to
// the gateway, not the whole run. Five changes of 150 ms each take longer
// than --timeout 300ms together, yet each takes less: all five are made.
// With --timeout bounding the whole run, the third failed with "context
// deadline exceeded" (exit 3), as 48 of 50 rules did on a slow router.
func TestApplyOutlivesTimeoutOnSlowGateway(t *testing.T) {
	self := netip.MustParseAddr("192.168.77.10")
	gw := &slowGateway{Memory: forwardtest.NewMemory(self), delay: 150 * time.Millisecond}
	var out, errOut bytes.Buffer
	args := []string{"apply", "--no-probe", "--timeout", "300ms", "--state-dir", t.TempDir(), rulesFile(t, 5, "")}
	if code := run(context.Background(), args, slowFactory(gw, &out, &errOut, false)); code != exitOK {
		t.Fatalf("apply exit %d; want 0\n%s%s", code, out.String(), errOut.String())
	}
	if ms, _ := gw.List(context.Background()); len(ms) != 5 {
		t.Errorf("the gateway holds %d mappings; want all 5", len(ms))
	}
}

// TestApplyProgressOnTerminal: on a terminal's stderr a long apply shows
// N/M on one line it rewrites, and erases it before the result; piped, or
// with -o json, it shows nothing.
func TestApplyProgressOnTerminal(t *testing.T) {
	for _, tc := range []struct {
		name        string
		errTerminal bool
		json        bool
		want        bool
	}{
		{"terminal", true, false, true},
		{"piped", false, false, false},
		{"json on a terminal", true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := forwardtest.NewMemory(netip.MustParseAddr("192.168.77.10"))
			var out, errOut bytes.Buffer
			args := []string{"apply", "--no-probe", "--state-dir", t.TempDir(), rulesFile(t, 3, "")}
			if tc.json {
				args = append(args, "-o", "json")
			}
			if code := run(context.Background(), args, slowFactory(gw, &out, &errOut, tc.errTerminal)); code != exitOK {
				t.Fatalf("apply exit %d\n%s", code, errOut.String())
			}
			stderr := errOut.String()
			shown := strings.Count(stderr, "changes done")
			if !tc.want {
				if shown > 0 || strings.Contains(stderr, "\x1b") || strings.Contains(out.String(), "changes done") {
					t.Errorf("progress where no one watches:\nstdout %q\nstderr %q", out.String(), stderr)
				}
				return
			}
			wantLine := eraseLine + "0/3 changes done…" + eraseLine + "1/3 changes done…" + eraseLine + "2/3 changes done…" +
				eraseLine + "3/3 changes done…" + eraseLine
			i := strings.Index(stderr, wantLine)
			if i < 0 || shown != 4 || !strings.Contains(stderr[i+len(wantLine):], "Apply: 3 change(s) made") {
				t.Errorf("stderr = %q; want %q, the line erased before the result", stderr, wantLine)
			}
		})
	}
}

// TestDiscoveryWaitsAsLongAsTimeout: UPnP discovery waits as long as
// --timeout, not a fixed 2 s: a router whose SSDP answer comes after the
// former window (upnp.DefaultDiscoverTimeout) is found with a --timeout
// that allows it. The one unit test that waits past 2 s: that is what it
// proves.
func TestDiscoveryWaitsAsLongAsTimeout(t *testing.T) {
	desc, err := os.ReadFile(filepath.Join("..", "..", "upnp", "testdata", "igd2-rootdesc.xml"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(desc) }))
	t.Cleanup(srv.Close)
	late := upnp.DefaultDiscoverTimeout + 300*time.Millisecond
	answerSSDP(t, "127.0.0.1:1900", srv.URL+"/rootDesc.xml", late)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	o := openOptions{Gateway: forward.GatewaySettings{Address: "127.0.0.1"}, Timeout: late + 3*time.Second}
	if _, err := o.openUPnP(context.Background(), false); err != nil {
		t.Fatalf("openUPnP = %v; want the router found", err)
	}
}

// answerSSDP answers every M-SEARCH to addr, after delay, with an IGD at
// location.
func answerSSDP(t *testing.T, addr, location string, delay time.Duration) {
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	answer := []byte("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: upnp:rootdevice\r\nUSN: uuid:x::upnp:rootdevice\r\nEXT:\r\n" +
		"SERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.1\r\nLOCATION: " + location + "\r\n\r\n")
	go func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			time.AfterFunc(delay, func() { conn.WriteToUDPAddrPort(answer, from) })
		}
	}()
}
