package probe

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// Every address a test can connect from is loopback, which a Server never
// probes: 127.0.0.1 and 127.0.0.2 stand for two clients on the internet
// instead. Other loopback addresses are refused as in production.
func init() {
	loopbackClients = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")}
}

// probeLog is a fake prober that records every address it is asked to
// probe, and checks that the dialer it is handed refuses a third party.
type probeLog struct {
	mu         sync.Mutex
	addrs      []netip.AddrPort
	thirdParty []error // what the dialer said to 192.0.2.1
	answerWith func(kind Kind, addr netip.AddrPort) Result
}

func (p *probeLog) probe(ctx context.Context, kind Kind, addr netip.AddrPort, opts Options) Result {
	_, err := opts.Dialer.DialContext(ctx, "tcp", "192.0.2.1:80")
	p.mu.Lock()
	p.addrs = append(p.addrs, addr)
	p.thirdParty = append(p.thirdParty, err)
	p.mu.Unlock()
	if p.answerWith != nil {
		return p.answerWith(kind, addr)
	}
	return Result{Kind: kind, Addr: addr, Answered: true, Latency: time.Millisecond}
}

func (p *probeLog) recorded() ([]netip.AddrPort, []error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]netip.AddrPort(nil), p.addrs...), append([]error(nil), p.thirdParty...)
}

// fakeClock is a settable clock for the rate limit.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// startServer runs s on loopback with a recording prober.
func startServer(t *testing.T, s *Server) (*httptest.Server, *probeLog) {
	t.Helper()
	log := &probeLog{}
	if s.Probe == nil {
		s.Probe = log.probe
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts, log
}

// clientFrom is an HTTP client whose connections come from local.
func clientFrom(t *testing.T, local string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// post sends body to the server's probe endpoint and decodes the answer.
func post(t *testing.T, c *http.Client, url, body string, header map[string]string) (*http.Response, wireResponse) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+ProbePath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer wireResponse
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatalf("answer (HTTP %d) is not JSON: %v", resp.StatusCode, err)
	}
	if answer.FormatVersion != wireVersion {
		t.Errorf("answer format_version = %d, want %d", answer.FormatVersion, wireVersion)
	}
	if resp.StatusCode != http.StatusOK && answer.Error == "" {
		t.Errorf("HTTP %d answer carries no error text", resp.StatusCode)
	}
	return resp, answer
}

const twoProbes = `{"format_version":1,"probes":[{"kind":"tcp","port":25565},{"kind":"minecraft-java","port":25565}]}`

// TestServerProbesOnlyTheRequester is the safety property: whatever the
// headers and body say, the only address probed is the TCP peer's.
func TestServerProbesOnlyTheRequester(t *testing.T) {
	s := &Server{Rate: 1000, Burst: 1000}
	ts, log := startServer(t, s)
	spoof := []map[string]string{
		nil,
		{"X-Forwarded-For": "8.8.8.8"},
		{"X-Real-IP": "8.8.8.8", "Forwarded": "for=8.8.8.8", "True-Client-IP": "8.8.8.8"},
		{"X-Forwarded-For": "8.8.8.8, 127.0.0.9", "X-Forwarded-Host": "8.8.8.8:25565"},
	}
	bodies := map[string]int{
		twoProbes: http.StatusOK,
		`{"format_version":1,"address":"8.8.8.8","probes":[{"kind":"tcp","port":80}]}`:          http.StatusBadRequest,
		`{"format_version":1,"probes":[{"kind":"tcp","port":80,"addr":"8.8.8.8"}]}`:             http.StatusBadRequest,
		`{"format_version":1,"probes":[{"kind":"tcp","port":80,"host":"example.com"}]}`:         http.StatusBadRequest,
		`{"format_version":1,"target":"8.8.8.8:53","probes":[{"kind":"udp","port":53}]}`:        http.StatusBadRequest,
		`{"format_version":1,"probes":[{"kind":"tcp","port":80}]}{"address":"8.8.8.8"}`:         http.StatusBadRequest,
		`{"format_version":1,"probes":[{"kind":"tcp","port":80}],"observed_address":"8.8.8.8"}`: http.StatusBadRequest,
	}
	for _, src := range []string{"127.0.0.1", "127.0.0.2"} {
		c := clientFrom(t, src)
		for _, h := range spoof {
			for body, want := range bodies {
				resp, answer := post(t, c, ts.URL, body, h)
				if resp.StatusCode != want {
					t.Errorf("from %s, headers %v, body %s: HTTP %d (%s), want %d", src, h, body, resp.StatusCode, answer.Error, want)
				}
				if want == http.StatusOK && answer.ObservedAddress != src {
					t.Errorf("from %s with %v: observed_address %q", src, h, answer.ObservedAddress)
				}
			}
		}
		assertProbedOnly(t, log, src)
		log.mu.Lock()
		log.addrs, log.thirdParty = nil, nil
		log.mu.Unlock()
	}
}

// assertProbedOnly checks that every probe went to src and that the dialer
// handed to the prober refused a third party.
func assertProbedOnly(t *testing.T, log *probeLog, src string) {
	t.Helper()
	addrs, dialErrs := log.recorded()
	if len(addrs) == 0 {
		t.Fatalf("from %s: nothing was probed at all", src)
	}
	want := netip.MustParseAddr(src)
	for i, a := range addrs {
		if a.Addr() != want {
			t.Errorf("request from %s probed %s", src, a)
		}
		if !errors.Is(dialErrs[i], errNotRequester) {
			t.Errorf("request from %s: the prober's dialer let it dial 192.0.2.1 (err %v)", src, dialErrs[i])
		}
	}
}

func TestServerRefusesTooManyPorts(t *testing.T) {
	ts, log := startServer(t, &Server{MaxPorts: 2, Rate: 1000, Burst: 1000})
	three := `{"format_version":1,"probes":[{"kind":"tcp","port":1},{"kind":"tcp","port":2},{"kind":"tcp","port":3}]}`
	resp, answer := post(t, ts.Client(), ts.URL, three, nil)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(answer.Error, "at most 2") {
		t.Fatalf("3 probes with MaxPorts 2: HTTP %d %q, want 422 naming the limit", resp.StatusCode, answer.Error)
	}
	if addrs, _ := log.recorded(); len(addrs) != 0 {
		t.Fatalf("a refused request was probed anyway: %v", addrs)
	}
	if resp, _ := post(t, ts.Client(), ts.URL, twoProbes, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("2 probes with MaxPorts 2: HTTP %d", resp.StatusCode)
	}
}

func TestServerDefaultMaxPorts(t *testing.T) {
	ts, _ := startServer(t, &Server{Rate: 1000, Burst: 1000})
	var probes []string
	for port := range DefaultMaxPorts + 1 {
		probes = append(probes, `{"kind":"tcp","port":`+itoa(port+1)+`}`)
	}
	body := `{"format_version":1,"probes":[` + strings.Join(probes, ",") + `]}`
	if resp, _ := post(t, ts.Client(), ts.URL, body, nil); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("%d probes on a zero Server: HTTP %d, want 422", DefaultMaxPorts+1, resp.StatusCode)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestServerRateLimit(t *testing.T) {
	clock := newFakeClock()
	ts, _ := startServer(t, &Server{Rate: 1.0 / 60, Burst: 2, Now: clock.Now})
	c := clientFrom(t, "127.0.0.1")
	for i := range 2 {
		if resp, _ := post(t, c, ts.URL, twoProbes, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d of the burst: HTTP %d", i+1, resp.StatusCode)
		}
	}
	resp, answer := post(t, c, ts.URL, twoProbes, nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "60" {
		t.Fatalf("over the limit: HTTP %d Retry-After %q (%s), want 429 and 60", resp.StatusCode, resp.Header.Get("Retry-After"), answer.Error)
	}
	// Another source has its own bucket.
	if resp, _ := post(t, clientFrom(t, "127.0.0.2"), ts.URL, twoProbes, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("another source was limited too: HTTP %d", resp.StatusCode)
	}
	clock.Advance(59 * time.Second)
	if resp, _ := post(t, c, ts.URL, twoProbes, nil); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("one second early: HTTP %d Retry-After %q, want 429 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	clock.Advance(time.Second)
	if resp, _ := post(t, c, ts.URL, twoProbes, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the bucket refilled: HTTP %d", resp.StatusCode)
	}
}

func TestServerToken(t *testing.T) {
	ts, log := startServer(t, &Server{Token: "s3cret", Rate: 1000, Burst: 1000})
	for _, auth := range []string{"", "Bearer", "Bearer wrong", "Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "s3cret"} {
		resp, _ := post(t, ts.Client(), ts.URL, twoProbes, map[string]string{"Authorization": auth})
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: HTTP %d, want 401 with WWW-Authenticate", auth, resp.StatusCode)
		}
	}
	if addrs, _ := log.recorded(); len(addrs) != 0 {
		t.Fatalf("unauthorised requests were probed: %v", addrs)
	}
	for _, auth := range []string{"Bearer s3cret", "bearer s3cret"} {
		if resp, _ := post(t, ts.Client(), ts.URL, twoProbes, map[string]string{"Authorization": auth}); resp.StatusCode != http.StatusOK {
			t.Errorf("Authorization %q: HTTP %d, want 200", auth, resp.StatusCode)
		}
	}
}

func TestServerRejectsBadRequests(t *testing.T) {
	ts, log := startServer(t, &Server{Rate: 1000, Burst: 1000})
	tests := []struct {
		name, body string
		want       int
	}{
		{"not JSON", `probes: tcp/80`, http.StatusBadRequest},
		{"unknown field", `{"format_version":1,"probes":[{"kind":"tcp","port":80}],"verbose":true}`, http.StatusBadRequest},
		{"no format_version", `{"probes":[{"kind":"tcp","port":80}]}`, http.StatusBadRequest},
		{"future format_version", `{"format_version":2,"probes":[{"kind":"tcp","port":80}]}`, http.StatusBadRequest},
		{"port as string", `{"format_version":1,"probes":[{"kind":"tcp","port":"80"}]}`, http.StatusBadRequest},
		{"too large", `{"format_version":1,"probes":[{"kind":"` + strings.Repeat("x", maxBodyBytes) + `","port":80}]}`, http.StatusRequestEntityTooLarge},
		{"no probes", `{"format_version":1,"probes":[]}`, http.StatusUnprocessableEntity},
		{"unknown kind", `{"format_version":1,"probes":[{"kind":"icmp","port":80}]}`, http.StatusUnprocessableEntity},
		{"port 0", `{"format_version":1,"probes":[{"kind":"tcp","port":0}]}`, http.StatusUnprocessableEntity},
		{"port 65536", `{"format_version":1,"probes":[{"kind":"tcp","port":65536}]}`, http.StatusUnprocessableEntity},
		{"negative port", `{"format_version":1,"probes":[{"kind":"tcp","port":-1}]}`, http.StatusUnprocessableEntity},
		{"twice", `{"format_version":1,"probes":[{"kind":"tcp","port":80},{"kind":"tcp","port":80}]}`, http.StatusUnprocessableEntity},
	}
	for _, tt := range tests {
		if resp, answer := post(t, ts.Client(), ts.URL, tt.body, nil); resp.StatusCode != tt.want {
			t.Errorf("%s: HTTP %d (%s), want %d", tt.name, resp.StatusCode, answer.Error, tt.want)
		}
	}
	if addrs, _ := log.recorded(); len(addrs) != 0 {
		t.Fatalf("refused requests were probed: %v", addrs)
	}
}

func TestServerMethodAndPath(t *testing.T) {
	ts, _ := startServer(t, &Server{Rate: 1000, Burst: 1000})
	resp, err := ts.Client().Get(ts.URL + ProbePath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
		t.Errorf("GET: HTTP %d Allow %q, want 405 and POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
	resp, err = ts.Client().Post(ts.URL+"/v1/scan", "application/json", strings.NewReader(twoProbes))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /v1/scan: HTTP %d, want 404", resp.StatusCode)
	}
}

func TestServerAnswerEncoding(t *testing.T) {
	s := &Server{Rate: 1000, Burst: 1000}
	log := &probeLog{answerWith: func(kind Kind, addr netip.AddrPort) Result {
		if kind == TCP {
			return Result{Answered: true, Latency: 12500 * time.Microsecond, Info: Info{Name: "A Minecraft Server", MaxPlayers: 20}}
		}
		return Result{Err: errors.Join(errors.New("connecting"), ErrRefused)}
	}}
	s.Probe = log.probe
	ts, _ := startServer(t, s)
	_, answer := post(t, ts.Client(), ts.URL, twoProbes, nil)
	want := []wireResult{
		{Kind: TCP, Port: 25565, Answered: true, LatencyMS: 12.5, Info: &Info{Name: "A Minecraft Server", MaxPlayers: 20}},
		{Kind: MinecraftJava, Port: 25565, ErrorCode: codeRefused, Error: "connecting\n" + ErrRefused.Error()},
	}
	got, _ := json.Marshal(answer.Results)
	wantJSON, _ := json.Marshal(want)
	if string(got) != string(wantJSON) {
		t.Errorf("results\n got %s\nwant %s", got, wantJSON)
	}
}

func TestPinnedDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := pinnedDialer{to: netip.MustParseAddr("127.0.0.1")}
	ctx := context.Background()
	for _, target := range [][2]string{
		{"tcp", "127.0.0.2:80"}, {"tcp", "192.0.2.1:80"}, {"tcp", "localhost:80"},
		{"udp", "[::1]:53"}, {"unix", "/run/docker.sock"}, {"ip4:icmp", "127.0.0.1"},
	} {
		if _, err := d.DialContext(ctx, target[0], target[1]); !errors.Is(err, errNotRequester) {
			t.Errorf("dial %s %s: err %v, want errNotRequester", target[0], target[1], err)
		}
	}
	for _, target := range []string{ln.Addr().String(), "[::ffff:127.0.0.1]:" + portOf(ln)} {
		conn, err := d.DialContext(ctx, "tcp", target)
		if err != nil {
			t.Fatalf("dial the requester at %s: %v", target, err)
		}
		conn.Close()
	}
}

func portOf(ln net.Listener) string {
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func TestListenAndServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- ListenAndServe(ctx, []string{"127.0.0.1:0"}, &Server{Probe: (&probeLog{}).probe}, pw) }()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		t.Fatal("no log line")
	}
	addr := strings.TrimPrefix(lines.Text(), "probe server listening on ")
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	resp, answer := post(t, http.DefaultClient, "http://"+addr, twoProbes, nil)
	if resp.StatusCode != http.StatusOK || len(answer.Results) != 2 {
		t.Fatalf("HTTP %d, %d results (%s)", resp.StatusCode, len(answer.Results), answer.Error)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ListenAndServe after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ListenAndServe did not return after ctx was cancelled")
	}
	if err := ListenAndServe(context.Background(), []string{addr + "x"}, &Server{}, nil); err == nil || !strings.Contains(err.Error(), "listening") {
		t.Errorf("bad address: err %v", err)
	}
}
