package probe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward/probe/probetest"
)

var loopback6 = netip.MustParseAddr("::1")

// ipv6Clients lets the tests' servers take ::1 for a client on the
// internet, as 127.0.0.1 is (see server_test.go's init), for the length
// of the test. The tests that call it are not parallel.
func ipv6Clients(t *testing.T) {
	saved := loopbackClients
	loopbackClients = append(slices.Clone(saved), loopback6)
	t.Cleanup(func() { loopbackClients = saved })
}

// serveOn runs h on a listener on addr ("127.0.0.1:0", "[::1]:0").
func serveOn(t *testing.T, addr string, h http.Handler) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(h)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

// TestRemoteVantageOverIPv6 runs client → server → Run → a Minecraft
// server, all over IPv6: the request leaves from ::1, the server sees it
// come from there and asks the Minecraft server on that address.
func TestRemoteVantageOverIPv6(t *testing.T) {
	ipv6Clients(t)
	mc, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	go probetest.ServeMinecraftJava(mc, probetest.JavaStatus{Version: "1.21.4", Protocol: 769, Players: 2, MaxPlayers: 10, Description: "IPv6 world"})
	ts := serveOn(t, "[::1]:0", &Server{Rate: 1000, Burst: 1000})
	port := uint16(mc.Addr().(*net.TCPAddr).Port)
	observed, results, err := RemoteVantage{URL: ts.URL}.Probe(context.Background(), loopback6, []Request{{MinecraftJava, port}})
	if err != nil {
		t.Fatal(err)
	}
	if observed != loopback6 || len(results) != 1 || !results[0].Answered || results[0].Info.Name != "IPv6 world" ||
		results[0].Addr != netip.AddrPortFrom(loopback6, port) {
		t.Errorf("observed %s, results %+v; want ::1 and the MOTD from [::1]:%d", observed, results, port)
	}
}

// TestRemoteVantageChoosesTheFamily: each request goes over the family of
// its origin, to URL6 over IPv6 when it is set; a URL that names the
// server by an address of the other family cannot be used, which is said
// with what to do; an origin this host does not have is ErrNotThisHost.
func TestRemoteVantageChoosesTheFamily(t *testing.T) {
	ipv6Clients(t)
	log := &probeLog{}
	s := &Server{Rate: 1000, Burst: 1000, Probe: log.probe}
	v4, v6 := serveOn(t, "127.0.0.1:0", s), serveOn(t, "[::1]:0", s)
	ctx := context.Background()
	both := RemoteVantage{URL: v4.URL, URL6: v6.URL}
	for from, want := range map[netip.Addr]netip.Addr{any4: netip.MustParseAddr("127.0.0.1"), loopback6: loopback6} {
		observed, _, err := both.Probe(ctx, from, []Request{{TCP, 80}})
		if err != nil || observed != want {
			t.Errorf("from %s: observed %s, %v; want %s", from, observed, err, want)
		}
	}
	var nf *NoFamilyError
	_, _, err := RemoteVantage{URL: v4.URL}.Probe(ctx, loopback6, []Request{{TCP, 80}})
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), "cannot be reached over IPv6 (its URL names it by its IPv4 address 127.0.0.1), so the probe over IPv6 could not run") ||
		!strings.Contains(err.Error(), "a second --via with its IPv6 address") {
		t.Errorf("IPv6 through an IPv4 URL: %v", err)
	}
	_, _, err = RemoteVantage{URL: v6.URL}.Probe(ctx, any4, []Request{{TCP, 80}})
	if !errors.As(err, &nf) || nf.Family.String() != "ipv4" {
		t.Errorf("IPv4 through an IPv6 URL: %v", err)
	}
	_, _, err = both.Probe(ctx, netip.MustParseAddr("2001:db8::1"), []Request{{TCP, 80}})
	if !errors.Is(err, ErrNotThisHost) {
		t.Errorf("from an address this host does not have: %v, want ErrNotThisHost", err)
	}
	addrs, thirdParty := log.recorded()
	if len(addrs) != 2 {
		t.Errorf("the server probed %v; want two probes, one per family", addrs)
	}
	for i, err := range thirdParty {
		if !errors.Is(err, errNotRequester) {
			t.Errorf("probe of %s: the dialer let a third party through: %v", addrs[i], err)
		}
	}
}

// TestRemoteVantageOverIPv6Unreachable: a probe server that does not
// listen on IPv6 is said to be unreachable over IPv6, with the fix; one
// that answers an IPv6 request with an IPv4 address (a proxy that does not
// pass the client's) is not believed.
func TestRemoteVantageOverIPv6Unreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + ln.Addr().String()
	ln.Close()
	_, _, err = RemoteVantage{URL: closedURL}.Probe(context.Background(), loopback6, []Request{{TCP, 80}})
	if err == nil || !strings.HasPrefix(err.Error(), "cannot reach the probe server at "+closedURL+" over IPv6") || !strings.Contains(err.Error(), "listens on IPv6") {
		t.Errorf("closed port over IPv6: %v", err)
	}
	proxied := serveOn(t, "[::1]:0", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"format_version":1,"observed_address":"127.0.0.1","results":[{"kind":"tcp","port":80,"answered":true}]}`)
	}))
	_, _, err = RemoteVantage{URL: proxied.URL}.Probe(context.Background(), loopback6, []Request{{TCP, 80}})
	if err == nil || !strings.Contains(err.Error(), "does not pass the client's IPv6 address") {
		t.Errorf("an IPv4 observed address over IPv6: %v", err)
	}
}

// TestListenAndServeBothFamilies: the default kind of address, ":PORT",
// takes requests over IPv4 and IPv6 on one socket, and says so; each is
// answered for the address it came from.
func TestListenAndServeBothFamilies(t *testing.T) {
	ipv6Clients(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- ListenAndServe(ctx, []string{":0"}, &Server{Probe: (&probeLog{}).probe}, pw) }()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		t.Fatal("no log line")
	}
	line := lines.Text()
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if !strings.HasSuffix(line, " (IPv4 and IPv6)") {
		t.Errorf("log line %q does not say it takes both families", line)
	}
	_, port, _ := net.SplitHostPort(strings.Fields(strings.TrimPrefix(line, "probe server listening on "))[0])
	for from, host := range map[netip.Addr]string{any4: "127.0.0.1", loopback6: "[::1]"} {
		observed, _, err := RemoteVantage{URL: "http://" + host + ":" + port}.Probe(ctx, from, []Request{{TCP, 80}})
		if err != nil || observed.String() != strings.Trim(host, "[]") {
			t.Errorf("over %s: observed %s, %v", host, observed, err)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ListenAndServe did not return after ctx was cancelled")
	}
}
