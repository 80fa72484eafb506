package probe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward/probe/probetest"
)

// quick bounds the probes that are expected to fail by waiting.
var quick = Options{Timeout: 700 * time.Millisecond}

// serveTCP runs serve on a loopback listener until the test ends, and
// checks it returns nil once the listener is closed.
func serveTCP(t *testing.T, serve func(net.Listener) error) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve(l) }()
	t.Cleanup(func() {
		_ = l.Close()
		if err := <-done; err != nil {
			t.Errorf("server returned %v after its listener closed", err)
		}
	})
	return netip.MustParseAddrPort(l.Addr().String())
}

// serveUDP runs serve on a loopback socket until the test ends.
func serveUDP(t *testing.T, serve func(net.PacketConn) error) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve(pc) }()
	t.Cleanup(func() {
		_ = pc.Close()
		if err := <-done; err != nil {
			t.Errorf("server returned %v after its socket closed", err)
		}
	})
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// closedPort is a loopback port that was just free on network.
func closedPort(t *testing.T, network string) netip.AddrPort {
	t.Helper()
	var a string
	if network == "tcp" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a = l.Addr().String()
		l.Close()
	} else {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a = pc.LocalAddr().String()
		pc.Close()
	}
	return netip.MustParseAddrPort(a)
}

// udpEcho returns every datagram to its sender.
func udpEcho(pc net.PacketConn) error {
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		_, _ = pc.WriteTo(buf[:n], from)
	}
}

// tcpServer accepts connections and hands each to handle.
func tcpServer(handle func(net.Conn)) func(net.Listener) error {
	return func(l net.Listener) error {
		for {
			c, err := l.Accept()
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if err != nil {
				return err
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}
}

// garbage says something that is no protocol of ours, then hangs up.
func garbage(c net.Conn) {
	_, _ = c.Write([]byte("220 mail.example ESMTP ready\r\n"))
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = c.Read(make([]byte, 512))
}

// silent accepts and says nothing until the client leaves.
func silent(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, err := c.Read(make([]byte, 512)); err != nil {
			return
		}
	}
}

func TestRunAnswered(t *testing.T) {
	java := probetest.JavaStatus{Version: "1.21.4", Protocol: 769, Players: 3, MaxPlayers: 20,
		Description: map[string]any{"text": "§aA ", "extra": []any{map[string]any{"text": "Server"}}}}
	legacy := probetest.JavaStatus{Version: "1.5.2", Protocol: 61, Players: 1, MaxPlayers: 8, Description: "Old §cworld", LegacyOnly: true}
	pre14 := probetest.JavaStatus{Players: 2, MaxPlayers: 4, Description: "Beta", LegacyOnly: true, Pre14: true}
	bedrock := probetest.BedrockStatus{MOTD: "Bedrock §2Server", Protocol: 766, Version: "1.21.50", Players: 4, MaxPlayers: 10, ServerGUID: -5}
	a2s := probetest.A2SInfo{Protocol: 17, Name: "Valheim", Map: "world", Folder: "valheim", Game: "Valheim", AppID: 0x9f2a, // 892970 truncated to the short the protocol carries
		Players: 2, MaxPlayers: 10, Version: "0.219"}
	web := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://elsewhere.example/", http.StatusFound)
	})
	httpSrv, httpsSrv := httptest.NewServer(web), httptest.NewTLSServer(web)
	t.Cleanup(httpSrv.Close)
	t.Cleanup(httpsSrv.Close)

	for _, tc := range []struct {
		name string
		kind Kind
		addr func(t *testing.T) netip.AddrPort
		want Info
	}{
		{"tcp", TCP, func(t *testing.T) netip.AddrPort { return serveTCP(t, tcpServer(silent)) }, Info{}},
		{"udp echo", UDP, func(t *testing.T) netip.AddrPort { return serveUDP(t, udpEcho) }, Info{}},
		{"minecraft java", MinecraftJava, func(t *testing.T) netip.AddrPort {
			return serveTCP(t, func(l net.Listener) error { return probetest.ServeMinecraftJava(l, java) })
		}, Info{Name: "A Server", Version: "1.21.4", Players: 3, MaxPlayers: 20}},
		{"minecraft java legacy fallback", MinecraftJava, func(t *testing.T) netip.AddrPort {
			return serveTCP(t, func(l net.Listener) error { return probetest.ServeMinecraftJava(l, legacy) })
		}, Info{Name: "Old world", Version: "1.5.2", Players: 1, MaxPlayers: 8}},
		{"minecraft java pre-1.4 fallback", MinecraftJava, func(t *testing.T) netip.AddrPort {
			return serveTCP(t, func(l net.Listener) error { return probetest.ServeMinecraftJava(l, pre14) })
		}, Info{Name: "Beta", Players: 2, MaxPlayers: 4}},
		{"minecraft bedrock", MinecraftBedrock, func(t *testing.T) netip.AddrPort {
			return serveUDP(t, func(pc net.PacketConn) error { return probetest.ServeBedrock(pc, bedrock) })
		}, Info{Name: "Bedrock Server", Version: "1.21.50", Players: 4, MaxPlayers: 10}},
		{"a2s", A2S, func(t *testing.T) netip.AddrPort {
			return serveUDP(t, func(pc net.PacketConn) error { return probetest.ServeA2S(pc, a2s, false) })
		}, Info{Name: "Valheim", Map: "world", Version: "Valheim 0.219", Players: 2, MaxPlayers: 10}},
		{"a2s with challenge", A2S, func(t *testing.T) netip.AddrPort {
			return serveUDP(t, func(pc net.PacketConn) error { return probetest.ServeA2S(pc, a2s, true) })
		}, Info{Name: "Valheim", Map: "world", Version: "Valheim 0.219", Players: 2, MaxPlayers: 10}},
		{"http redirect not followed", HTTP, func(*testing.T) netip.AddrPort { return addrOf(httpSrv) }, Info{Status: http.StatusFound}},
		{"https self-signed", HTTPS, func(*testing.T) netip.AddrPort { return addrOf(httpsSrv) }, Info{Status: http.StatusFound}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := tc.addr(t)
			res := Run(context.Background(), tc.kind, addr, Options{})
			if !res.Answered || res.Err != nil {
				t.Fatalf("Run(%s, %v) = not answered: %v", tc.kind, addr, res.Err)
			}
			if res.Info != tc.want {
				t.Errorf("Info = %+v, want %+v", res.Info, tc.want)
			}
			if res.Latency <= 0 || res.Latency > DefaultTimeout {
				t.Errorf("Latency = %v, want within (0, %v]", res.Latency, DefaultTimeout)
			}
			if res.Kind != tc.kind || res.Addr != addr {
				t.Errorf("Result names %s %v, want %s %v", res.Kind, res.Addr, tc.kind, addr)
			}
		})
	}
}

// addrOf is an httptest server's address.
func addrOf(s *httptest.Server) netip.AddrPort {
	return netip.MustParseAddrPort(s.Listener.Addr().String())
}

func TestRunFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind Kind
		addr func(t *testing.T) netip.AddrPort
		want []error // any of
	}{
		{"tcp nothing listening", TCP, func(t *testing.T) netip.AddrPort { return closedPort(t, "tcp") }, []error{ErrRefused}},
		{"java nothing listening", MinecraftJava, func(t *testing.T) netip.AddrPort { return closedPort(t, "tcp") }, []error{ErrRefused}},
		{"http nothing listening", HTTP, func(t *testing.T) netip.AddrPort { return closedPort(t, "tcp") }, []error{ErrRefused}},
		{"udp nothing listening", UDP, func(t *testing.T) netip.AddrPort { return closedPort(t, "udp") }, []error{ErrRefused, ErrNoAnswer}},
		{"bedrock nothing listening", MinecraftBedrock, func(t *testing.T) netip.AddrPort { return closedPort(t, "udp") }, []error{ErrRefused, ErrNoAnswer}},
		{"a2s nothing listening", A2S, func(t *testing.T) netip.AddrPort { return closedPort(t, "udp") }, []error{ErrRefused, ErrNoAnswer}},
		{"udp silent", UDP, func(t *testing.T) netip.AddrPort { return serveUDP(t, drop) }, []error{ErrNoAnswer}},
		{"java garbage", MinecraftJava, func(t *testing.T) netip.AddrPort { return serveTCP(t, tcpServer(garbage)) }, []error{ErrBadAnswer}},
		{"http garbage", HTTP, func(t *testing.T) netip.AddrPort { return serveTCP(t, tcpServer(garbage)) }, []error{ErrBadAnswer}},
		{"https to plain", HTTPS, func(t *testing.T) netip.AddrPort { return serveTCP(t, tcpServer(garbage)) }, []error{ErrBadAnswer}},
		{"java silent", MinecraftJava, func(t *testing.T) netip.AddrPort { return serveTCP(t, tcpServer(silent)) }, []error{ErrNoAnswer}},
		{"bedrock to an echo", MinecraftBedrock, func(t *testing.T) netip.AddrPort { return serveUDP(t, udpEcho) }, []error{ErrBadAnswer}},
		{"a2s to an echo", A2S, func(t *testing.T) netip.AddrPort { return serveUDP(t, udpEcho) }, []error{ErrBadAnswer}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := Run(context.Background(), tc.kind, tc.addr(t), quick)
			t.Logf("%s: %v", tc.kind, res.Err)
			if res.Answered {
				t.Fatalf("Answered; want one of %v", tc.want)
			}
			if !isAny(res.Err, tc.want) {
				t.Errorf("Err = %v; want one of %v", res.Err, tc.want)
			}
			if n := countSentinels(res.Err); n != 1 {
				t.Errorf("Err = %v wraps %d of the sentinel errors, want exactly 1", res.Err, n)
			}
		})
	}
}

// drop reads and never answers.
func drop(pc net.PacketConn) error {
	buf := make([]byte, 2048)
	for {
		if _, _, err := pc.ReadFrom(buf); errors.Is(err, net.ErrClosed) {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// isAny reports whether err wraps one of targets.
func isAny(err error, targets []error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// countSentinels counts the sentinel errors err wraps.
func countSentinels(err error) int {
	n := 0
	for _, s := range []error{ErrRefused, ErrNoAnswer, ErrBadAnswer} {
		if errors.Is(err, s) {
			n++
		}
	}
	return n
}

// countingDialer counts the connections it opens.
type countingDialer struct {
	n atomic.Int32
	d net.Dialer
}

func (c *countingDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c.n.Add(1)
	return c.d.DialContext(ctx, network, address)
}

func TestRunUsesDialer(t *testing.T) {
	web := httptest.NewServer(http.NotFoundHandler())
	defer web.Close()
	for _, kind := range []Kind{TCP, HTTP} {
		d := &countingDialer{}
		res := Run(context.Background(), kind, addrOf(web), Options{Dialer: d})
		if !res.Answered || d.n.Load() != 1 {
			t.Errorf("%s: answered %v (%v), dialer used %d times; want answered, 1", kind, res.Answered, res.Err, d.n.Load())
		}
	}
}

func TestRunTimeoutAndCancel(t *testing.T) {
	addr := serveTCP(t, tcpServer(silent))
	start := time.Now()
	res := Run(context.Background(), MinecraftJava, addr, Options{Timeout: 300 * time.Millisecond})
	if !errors.Is(res.Err, ErrNoAnswer) || time.Since(start) > 2*time.Second {
		t.Errorf("timeout: %v after %v", res.Err, time.Since(start))
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	res = Run(ctx, MinecraftJava, addr, Options{Timeout: time.Minute})
	if !errors.Is(res.Err, ErrNoAnswer) || time.Since(start) > 2*time.Second {
		t.Errorf("cancel: %v after %v", res.Err, time.Since(start))
	}
}

func TestRunUnknownKind(t *testing.T) {
	res := Run(context.Background(), Kind("gopher"), netip.MustParseAddrPort("127.0.0.1:70"), Options{})
	if res.Answered || res.Err == nil || countSentinels(res.Err) != 0 {
		t.Errorf("unknown kind: %+v", res)
	}
}

func TestProbersCoverKinds(t *testing.T) {
	for _, k := range Kinds() {
		if probers[k] == nil {
			t.Errorf("no prober for %s", k)
		}
	}
}
