package probe

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// serveFrom answers a request from the peer remote (such as
// "[2001:db8::1]:4711") without a connection, so that a test can stand for
// any address, IPv6 included.
func serveFrom(t *testing.T, s *Server, remote, body string, header map[string]string) (int, wireResponse) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, ProbePath, strings.NewReader(body))
	req.RemoteAddr = remote
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	var answer wireResponse
	if err := json.NewDecoder(rec.Body).Decode(&answer); err != nil {
		t.Fatalf("from %s: answer (HTTP %d) is not JSON: %v", remote, rec.Code, err)
	}
	return rec.Code, answer
}

const redisProbe = `{"format_version":1,"probes":[{"kind":"http","port":6379}]}`

// TestServerRefusesLoopbackPeer: behind a reverse proxy on the same host
// every peer is on loopback; the server must not probe its own services
// there for whoever is on the other side of the proxy.
func TestServerRefusesLoopbackPeer(t *testing.T) {
	ts, log := startServer(t, &Server{Rate: 1000, Burst: 1000})
	resp, answer := post(t, clientFrom(t, "127.0.0.3"), ts.URL, redisProbe, map[string]string{"X-Forwarded-For": "203.0.113.7"})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(answer.Error, "loopback") || !strings.Contains(answer.Error, "--trusted-proxy") {
		t.Errorf("from 127.0.0.3: HTTP %d %q, want 403 naming loopback and --trusted-proxy", resp.StatusCode, answer.Error)
	}
	if addrs, _ := log.recorded(); len(addrs) != 0 {
		t.Fatalf("the server probed its own loopback: %v", addrs)
	}
}

// TestServerRefusedPeers: the server's own host and link are never probed;
// private networks only with AllowPrivate; anything else is.
func TestServerRefusedPeers(t *testing.T) {
	own := []string{"127.0.0.3:1", "127.255.255.254:1", "[::1]:1", "[::ffff:127.0.0.5]:1", "0.0.0.0:1", "0.1.2.3:1",
		"[::]:1", "169.254.169.254:1", "[fe80::1%eth0]:1"}
	private := []string{"10.1.2.3:1", "172.16.0.1:1", "192.168.1.10:1", "[fd00::1]:1", "[fc00::1]:1", "100.64.0.1:1", "[::ffff:192.168.1.1]:1"}
	public := []string{"203.0.113.7:1", "50.60.70.1:1", "[2001:db8::1]:1", "[::ffff:198.51.100.7]:1", "100.128.0.1:1"}
	for _, allowPrivate := range []bool{false, true} {
		s := &Server{Rate: 1000, Burst: 1000, AllowPrivate: allowPrivate}
		log := &probeLog{}
		s.Probe = log.probe
		want := map[string]int{}
		for _, a := range own {
			want[a] = http.StatusForbidden
		}
		for _, a := range private {
			want[a] = map[bool]int{false: http.StatusForbidden, true: http.StatusOK}[allowPrivate]
		}
		for _, a := range public {
			want[a] = http.StatusOK
		}
		for remote, status := range want {
			if got, answer := serveFrom(t, s, remote, redisProbe, nil); got != status {
				t.Errorf("AllowPrivate %v, from %s: HTTP %d (%s), want %d", allowPrivate, remote, got, answer.Error, status)
			}
		}
		probed, _ := log.recorded()
		for _, ap := range probed {
			if ap.Addr().IsLoopback() || ap.Addr().IsUnspecified() || ap.Addr().IsLinkLocalUnicast() || (!allowPrivate && ap.Addr().IsPrivate()) {
				t.Errorf("AllowPrivate %v: probed %s", allowPrivate, ap)
			}
		}
	}
}

// TestServerTrustedProxy: from the named proxy, the client it names in the
// named header is probed and rate limited; from any other peer, headers
// are still ignored.
func TestServerTrustedProxy(t *testing.T) {
	s := &Server{Rate: 1.0 / 60, Burst: 1, TrustedProxies: []netip.Addr{netip.MustParseAddr("127.0.0.5")}, ClientIPHeader: "X-Real-IP"}
	ts, log := startServer(t, s)
	proxy := clientFrom(t, "127.0.0.5")
	for _, client := range []string{"203.0.113.7", "198.51.100.9"} {
		resp, answer := post(t, proxy, ts.URL, twoProbes, map[string]string{"X-Real-IP": client, "X-Forwarded-For": "8.8.8.8"})
		if resp.StatusCode != http.StatusOK || answer.ObservedAddress != client {
			t.Errorf("via the proxy for %s: HTTP %d observed %q (%s)", client, resp.StatusCode, answer.ObservedAddress, answer.Error)
		}
	}
	// Each client has its own bucket, not the proxy's.
	if resp, _ := post(t, proxy, ts.URL, twoProbes, map[string]string{"X-Real-IP": "203.0.113.7"}); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a client's second request through the proxy: HTTP %d, want 429", resp.StatusCode)
	}
	probed, dialErrs := log.recorded()
	for i, ap := range probed {
		if a := ap.Addr().String(); a != "203.0.113.7" && a != "198.51.100.9" || dialErrs[i] == nil {
			t.Errorf("probed %s (dial to a third party: %v)", ap, dialErrs[i])
		}
	}
	if resp, answer := post(t, proxy, ts.URL, twoProbes, nil); resp.StatusCode != http.StatusBadRequest || !strings.Contains(answer.Error, "X-Real-IP") {
		t.Errorf("from the proxy without X-Real-IP: HTTP %d %q, want 400 naming the header", resp.StatusCode, answer.Error)
	}
	resp, _ := post(t, proxy, ts.URL, twoProbes, map[string]string{"X-Real-IP": "::1"})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("the proxy naming a loopback client: HTTP %d, want 403", resp.StatusCode)
	}
	resp, _ = post(t, clientFrom(t, "127.0.0.6"), ts.URL, twoProbes, map[string]string{"X-Real-IP": "198.51.100.10"})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("X-Real-IP from a peer that is not the proxy: HTTP %d, want 403 (the peer, on loopback)", resp.StatusCode)
	}
	if code, answer := serveFrom(t, s, "198.51.100.11:4711", twoProbes, map[string]string{"X-Real-IP": "198.51.100.12"}); code != http.StatusOK || answer.ObservedAddress != "198.51.100.11" {
		t.Errorf("X-Real-IP from a peer that is not the proxy: HTTP %d observed %q, want the peer", code, answer.ObservedAddress)
	}
}

func TestClientFromHeader(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		want   string // "" for an error
	}{
		{"X-Real-IP", http.Header{"X-Real-Ip": {"203.0.113.7"}}, "203.0.113.7"},
		{"X-Real-IP", http.Header{"X-Real-Ip": {" 2001:db8::7 "}}, "2001:db8::7"},
		{"X-Forwarded-For", http.Header{"X-Forwarded-For": {"8.8.8.8, 203.0.113.7"}}, "203.0.113.7"},
		{"X-Forwarded-For", http.Header{"X-Forwarded-For": {"203.0.113.7", "8.8.8.8,198.51.100.1"}}, "198.51.100.1"},
		{"x-forwarded-for", http.Header{"X-Forwarded-For": {"[2001:db8::7]:4711"}}, "2001:db8::7"},
		{"X-Forwarded-For", http.Header{"X-Forwarded-For": {"::ffff:203.0.113.7"}}, "203.0.113.7"},
		{"X-Forwarded-For", http.Header{"X-Forwarded-For": {"203.0.113.7:4711"}}, "203.0.113.7"},
		{"Forwarded", http.Header{"Forwarded": {`for=8.8.8.8, for="[2001:db8:cafe::17]:4711";proto=https`}}, "2001:db8:cafe::17"},
		{"Forwarded", http.Header{"Forwarded": {"proto=https;For=203.0.113.7"}}, "203.0.113.7"},
		{"Forwarded", http.Header{"Forwarded": {"for=unknown"}}, ""},
		{"Forwarded", http.Header{"Forwarded": {"proto=https"}}, ""},
		{"X-Real-IP", http.Header{}, ""},
		{"X-Real-IP", http.Header{"X-Real-Ip": {""}}, ""},
		{"X-Real-IP", http.Header{"X-Real-Ip": {"example.com"}}, ""},
		{"X-Forwarded-For", http.Header{"X-Forwarded-For": {"203.0.113.7,"}}, ""},
		{"", http.Header{"X-Real-Ip": {"203.0.113.7"}}, ""},
	}
	for _, tt := range tests {
		got, err := clientFromHeader(tt.header, tt.name)
		if tt.want == "" {
			if err == nil {
				t.Errorf("%s in %v: %s, want an error", tt.name, tt.header, got)
			}
			continue
		}
		if err != nil || got != netip.MustParseAddr(tt.want) {
			t.Errorf("%s in %v: %s, %v; want %s", tt.name, tt.header, got, err, tt.want)
		}
	}
}

func TestServerProxyConfig(t *testing.T) {
	proxy := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	good := []*Server{{}, {TrustedProxies: proxy, ClientIPHeader: "X-Real-IP"}}
	for _, s := range good {
		if err := s.checkProxyConfig(); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
	bad := []*Server{
		{TrustedProxies: proxy},
		{ClientIPHeader: "X-Real-IP"},
		{TrustedProxies: []netip.Addr{{}}, ClientIPHeader: "X-Real-IP"},
		{TrustedProxies: []netip.Addr{netip.MustParseAddr("::ffff:127.0.0.1")}, ClientIPHeader: "X-Real-IP"},
	}
	for _, s := range bad {
		if err := s.checkProxyConfig(); err == nil {
			t.Errorf("proxies %v, header %q: no error", s.TrustedProxies, s.ClientIPHeader)
		}
		// A server that starts anyway gives up at the deadline, with no error.
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		err := ListenAndServe(ctx, []string{"127.0.0.1:0"}, s, nil)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "starting the probe server") {
			t.Errorf("ListenAndServe with proxies %v, header %q: %v", s.TrustedProxies, s.ClientIPHeader, err)
		}
	}
}

// FuzzClientFromHeader: whatever a proxy's header holds, the answer is an
// error or one plain address (no zone, IPv4 unmapped), never a panic.
func FuzzClientFromHeader(f *testing.F) {
	for _, seed := range []string{"203.0.113.7", "8.8.8.8, [2001:db8::7]:4711", `for="[2001:db8:cafe::17]:4711";proto=https`,
		"for=unknown", "::ffff:10.0.0.1", "fe80::1%eth0", "[", ",", ";for=", ""} {
		f.Add("X-Forwarded-For", seed)
		f.Add("Forwarded", seed)
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		a, err := clientFromHeader(http.Header{http.CanonicalHeaderKey(name): {value}}, name)
		if err != nil {
			return
		}
		if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
			t.Fatalf("%s: %q gave %s", name, value, a)
		}
	})
}
