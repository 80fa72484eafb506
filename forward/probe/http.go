package probe

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"
)

// probeHTTP sends GET / over plain HTTP.
func probeHTTP(ctx context.Context, addr netip.AddrPort, d Dialer) (Info, time.Duration, error) {
	return probeWeb(ctx, "http", addr, d)
}

// probeHTTPS sends GET / over TLS.
func probeHTTPS(ctx context.Context, addr netip.AddrPort, d Dialer) (Info, time.Duration, error) {
	return probeWeb(ctx, "https", addr, d)
}

// probeWeb sends GET / and counts any HTTP response, whatever its status,
// as the answer (RFC 9110 §15: a status code is the server answering).
// Redirects are not followed: the redirect itself proves the server, and
// its target may be another host entirely.
func probeWeb(ctx context.Context, scheme string, addr netip.AddrPort, d Dialer) (Info, time.Duration, error) {
	var dialErr atomic.Pointer[error]
	client := webClient(d, &dialErr)
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr.String()+"/", nil)
	if err != nil {
		return Info{}, 0, err
	}
	req.Header.Set("User-Agent", "portfwd-probe")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		if de := dialErr.Load(); de != nil {
			return Info{}, 0, dialError(*de)
		}
		return Info{}, 0, ioError("GET /", err)
	}
	latency := time.Since(start)
	_ = resp.Body.Close()
	return Info{Status: resp.StatusCode}, latency, nil
}

// webClient is an HTTP client that dials through d, recording a failure
// to connect in dialErr (the transport dials on its own goroutine) so it is not mistaken for a bad answer.
//
// TLS certificates are not verified: the probe proves the forward reaches
// a server that speaks TLS and HTTP, not that its certificate is right
// (addressed by IP, a home server's certificate rarely matches anyway).
func webClient(d Dialer, dialErr *atomic.Pointer[error]) *http.Client {
	dialContext := func(ctx context.Context, network, address string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, address)
		if err != nil {
			dialErr.Store(&err)
		}
		return conn, err
	}
	return &http.Client{
		Transport: &http.Transport{
			DialContext:       dialContext,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // reachability, not identity; see above
			DisableKeepAlives: true,
			Proxy:             nil,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
