package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestRemoteVantageFakeProber runs client → server → an injected prober,
// and checks what the client makes of every kind of answer.
func TestRemoteVantageFakeProber(t *testing.T) {
	answers := map[Kind]Result{
		TCP:              {Answered: true, Latency: 12500 * time.Microsecond},
		MinecraftJava:    {Answered: true, Latency: 3 * time.Millisecond, Info: Info{Name: "A Minecraft Server", Version: "1.21", Players: 1, MaxPlayers: 20}},
		UDP:              {Err: fmt.Errorf("waiting for a reply: %w", ErrNoAnswer)},
		MinecraftBedrock: {Err: fmt.Errorf("connecting: %w", ErrRefused)},
		A2S:              {Err: fmt.Errorf("%w: reply too short", ErrBadAnswer)},
		HTTP:             {Err: errors.New("something unforeseen")},
		HTTPS:            {},
	}
	log := &probeLog{answerWith: func(kind Kind, _ netip.AddrPort) Result { return answers[kind] }}
	ts, _ := startServer(t, &Server{Rate: 1000, Burst: 1000, Probe: log.probe})
	var reqs []Request
	for i, k := range Kinds() {
		reqs = append(reqs, Request{Kind: k, Port: uint16(27000 + i)})
	}
	observed, results, err := RemoteVantage{URL: ts.URL}.Probe(context.Background(), any4, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if observed != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("observed %s, want 127.0.0.1", observed)
	}
	for i, res := range results {
		want := answers[reqs[i].Kind]
		if res.Kind != reqs[i].Kind || res.Addr != netip.AddrPortFrom(observed, reqs[i].Port) {
			t.Errorf("result %d is for %s %s, asked %s/%d", i, res.Kind, res.Addr, reqs[i].Kind, reqs[i].Port)
		}
		if res.Answered != want.Answered || res.Latency != want.Latency || res.Info != want.Info {
			t.Errorf("%s: got answered=%v latency=%v info=%+v, want %v %v %+v", res.Kind, res.Answered, res.Latency, res.Info, want.Answered, want.Latency, want.Info)
		}
		checkRemoteErr(t, res, want)
	}
}

// checkRemoteErr checks that the rebuilt error reads and unwraps as the
// prober's did.
func checkRemoteErr(t *testing.T, got, want Result) {
	t.Helper()
	if want.Answered {
		if got.Err != nil {
			t.Errorf("%s: answered but Err = %v", got.Kind, got.Err)
		}
		return
	}
	if got.Err == nil {
		t.Fatalf("%s: not answered and no Err", got.Kind)
	}
	if want.Err != nil && got.Err.Error() != want.Err.Error() {
		t.Errorf("%s: Err %q, want %q", got.Kind, got.Err, want.Err)
	}
	for _, sentinel := range []error{ErrRefused, ErrNoAnswer, ErrBadAnswer} {
		wantIs := errors.Is(want.Err, sentinel) || (want.Err == nil && sentinel == ErrNoAnswer)
		if errors.Is(got.Err, sentinel) != wantIs {
			t.Errorf("%s: errors.Is(%q, %v) = %v, want %v", got.Kind, got.Err, sentinel, !wantIs, wantIs)
		}
	}
}

// TestRemoteVantageRealProbe runs client → server → Run → real listeners
// on loopback: one open TCP port, one closed.
func TestRemoteVantageRealProbe(t *testing.T) {
	open, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	go func() {
		for {
			conn, err := open.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	ts := httptest.NewServer(&Server{Timeout: 2 * time.Second})
	defer ts.Close()
	reqs := []Request{{TCP, portNum(t, open)}, {TCP, portNum(t, closed)}}
	_, results, err := RemoteVantage{URL: ts.URL}.Probe(context.Background(), any4, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if !results[0].Answered || results[0].Err != nil {
		t.Errorf("open port: answered=%v err=%v", results[0].Answered, results[0].Err)
	}
	if results[1].Answered || !errors.Is(results[1].Err, ErrRefused) {
		t.Errorf("closed port: answered=%v err=%v, want ErrRefused", results[1].Answered, results[1].Err)
	}
}

func portNum(t *testing.T, ln net.Listener) uint16 {
	t.Helper()
	return ln.Addr().(*net.TCPAddr).AddrPort().Port()
}

func TestRemoteVantageRefusals(t *testing.T) {
	clock := newFakeClock()
	ts, _ := startServer(t, &Server{Token: "s3cret", Rate: 1.0 / 40, Burst: 1, Now: clock.Now})
	reqs := []Request{{TCP, 25565}}
	ctx := context.Background()

	_, _, err := RemoteVantage{URL: ts.URL, Token: "wrong"}.Probe(ctx, any4, reqs)
	var ve *VantageError
	if !errors.As(err, &ve) || ve.Status != http.StatusUnauthorized || !strings.Contains(err.Error(), "token") {
		t.Errorf("wrong token: %v", err)
	}
	clock.Advance(time.Minute)
	v := RemoteVantage{URL: ts.URL, Token: "s3cret"}
	if _, _, err := v.Probe(ctx, any4, reqs); err != nil {
		t.Fatalf("right token: %v", err)
	}
	_, _, err = v.Probe(ctx, any4, reqs)
	want := "the probe server at " + ts.URL + " refused: rate limited, retry in 40s"
	if err == nil || err.Error() != want || !errors.As(err, &ve) || ve.RetryAfter != 40*time.Second {
		t.Errorf("rate limited:\n got %v\nwant %s", err, want)
	}
	_, _, err = v.Probe(ctx, any4, []Request{{"icmp", 1}})
	if !errors.As(err, &ve) || ve.Status != http.StatusUnprocessableEntity && ve.Status != http.StatusTooManyRequests {
		t.Errorf("unknown kind: %v", err)
	}
}

func TestRemoteVantageUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	_, _, err = RemoteVantage{URL: url}.Probe(context.Background(), any4, []Request{{TCP, 80}})
	if err == nil || !strings.HasPrefix(err.Error(), "cannot reach the probe server at "+url) {
		t.Errorf("closed port: %v", err)
	}
	for _, bad := range []string{"", "vps.example.net:8443", "ftp://vps.example.net", "http://"} {
		if _, _, err := (RemoteVantage{URL: bad}).Probe(context.Background(), any4, []Request{{TCP, 80}}); err == nil || !strings.Contains(err.Error(), "not an http") {
			t.Errorf("URL %q: %v", bad, err)
		}
	}
}

func TestRemoteVantageNotAProbeServer(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/proxy" + ProbePath:
			http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
		case "/old" + ProbePath:
			fmt.Fprint(w, `{"format_version":2}`)
		default:
			fmt.Fprint(w, `{"format_version":1,"observed_address":"127.0.0.1","results":[{"kind":"udp","port":80}]}`)
		}
	}))
	defer ts.Close()
	tests := map[string]string{
		ts.URL + "/proxy":  "502 Bad Gateway",
		ts.URL + "/old/":   "format_version 2",
		ts.URL + ProbePath: "answered udp/80 where tcp/80 was asked",
	}
	for url, want := range tests {
		_, _, err := RemoteVantage{URL: url}.Probe(context.Background(), any4, []Request{{TCP, 80}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want it to say %q", url, err, want)
		}
	}
}

func TestRemoteError(t *testing.T) {
	tests := []struct {
		code, msg string
		is        error
		text      string
	}{
		{codeRefused, "connecting: refused", ErrRefused, "connecting: refused"},
		{codeNoAnswer, "", ErrNoAnswer, ErrNoAnswer.Error()},
		{codeBadAnswer, "short reply", ErrBadAnswer, "short reply"},
		{"", "", ErrNoAnswer, ErrNoAnswer.Error()},
		{"from-the-future", "odd", ErrNoAnswer, "odd"},
		{codeOther, "unforeseen", nil, "unforeseen"},
	}
	for _, tt := range tests {
		err := remoteError(tt.code, tt.msg)
		if err.Error() != tt.text {
			t.Errorf("remoteError(%q, %q) reads %q, want %q", tt.code, tt.msg, err, tt.text)
		}
		for _, s := range []error{ErrRefused, ErrNoAnswer, ErrBadAnswer} {
			if errors.Is(err, s) != (s == tt.is) {
				t.Errorf("remoteError(%q, %q): errors.Is %v = %v", tt.code, tt.msg, s, !(s == tt.is))
			}
		}
	}
}

// any4 asks over IPv4 from whichever address the system picks.
var any4 = netip.IPv4Unspecified()
