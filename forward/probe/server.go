package probe

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// Defaults for the zero Server.
const (
	DefaultMaxPorts = 16       // probes in one request
	DefaultRate     = 6.0 / 60 // requests per second per source: 6 a minute
	DefaultBurst    = 3        // requests a source may make at once
	maxBodyBytes    = 16 << 10 // a request body; 16 probes need under 1 KiB
	// probeParallel: every probe of a request goes to the requester, who
	// asked for all of them at once, so they may all run at once.
	probeParallel = DefaultMaxPorts
	maxInFlight   = 32 // requests being probed at once, all sources
	requestSlack  = time.Second
)

// Server answers probe requests. The zero Server is ready to use with the
// defaults above and no token; it must not be copied after first use.
//
// Whatever a request says, the server only ever contacts the address the
// request came from, so it cannot be used to scan or flood anyone else.
// That address is the TCP peer, or, for a request from one of
// TrustedProxies, the client the proxy names. It never probes its own host
// or link (loopback, unspecified, link-local addresses), nor private
// networks unless AllowPrivate: behind an unnamed reverse proxy every
// request comes from the proxy, often on loopback, and probing that would
// reach the services the host keeps from the internet.
type Server struct {
	// Token, when set, must be sent as "Authorization: Bearer <token>".
	// Requests with it and without it are rate limited apart, so that
	// clients without it cannot crowd out those with it.
	Token string
	// AllowPrivate lets private (RFC 1918, RFC 4193) and carrier-grade NAT
	// (RFC 6598) addresses be probed: for a probe server on a LAN.
	AllowPrivate bool
	// TrustedProxies are reverse proxies in front of the server. A request
	// from one of them is answered for the client it names in
	// ClientIPHeader; headers from any other peer are never read.
	TrustedProxies []netip.Addr
	// ClientIPHeader is the header TrustedProxies name the client in, such
	// as X-Real-IP or X-Forwarded-For: the last address in it is used.
	ClientIPHeader string
	// MaxPorts caps the probes in one request; 0 means DefaultMaxPorts.
	MaxPorts int
	// Rate is the requests per second a source earns; 0 means DefaultRate.
	Rate float64
	// Burst is the requests a source may make at once; 0 means DefaultBurst.
	Burst int
	// Timeout bounds each probe; 0 means DefaultTimeout.
	Timeout time.Duration
	// TLS, when set, makes ListenAndServe serve HTTPS with it (its
	// Certificates): the token then travels encrypted. Nil serves plain
	// HTTP, for a server behind a TLS-terminating reverse proxy.
	TLS *tls.Config
	// Probe runs one probe; nil means Run. Tests inject a fake.
	Probe func(ctx context.Context, kind Kind, addr netip.AddrPort, opts Options) Result
	// Now is the clock of the rate limit; nil means time.Now.
	Now func() time.Time

	once     sync.Once
	limiter  *sourceLimiter // requests with the token, or all without one
	failures *sourceLimiter // requests with a missing or wrong token
	inFlight chan struct{}
}

// serverError is a refused request: the status and what to tell the client.
type serverError struct {
	status     int
	msg        string
	retryAfter time.Duration
}

// refusal builds a serverError with a formatted message.
func refusal(status int, format string, args ...any) *serverError {
	return &serverError{status: status, msg: fmt.Sprintf(format, args...)}
}

// ServeHTTP answers POST /v1/probe; see the wire format above.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	resp, serr := s.handle(w, r)
	if serr != nil {
		writeServerError(w, serr)
		return
	}
	writeServerJSON(w, http.StatusOK, resp)
}

// handle checks a request, cheapest and most abusable checks first, then
// probes its source.
func (s *Server) handle(w http.ResponseWriter, r *http.Request) (*wireResponse, *serverError) {
	s.once.Do(s.init)
	if r.URL.Path != ProbePath {
		return nil, refusal(http.StatusNotFound, "no such endpoint %q; probe requests go to POST %s", r.URL.Path, ProbePath)
	}
	if r.Method != http.MethodPost {
		return nil, refusal(http.StatusMethodNotAllowed, "method %s not allowed; use POST", r.Method)
	}
	src, serr := s.clientAddr(r)
	if serr != nil {
		return nil, serr
	}
	if serr := s.checkClient(src); serr != nil {
		return nil, serr
	}
	if serr := s.admit(r, src); serr != nil {
		return nil, serr
	}
	probes, serr := s.readRequest(w, r)
	if serr != nil {
		return nil, serr
	}
	select {
	case s.inFlight <- struct{}{}:
		defer func() { <-s.inFlight }()
	default:
		return nil, &serverError{status: http.StatusServiceUnavailable, msg: "busy", retryAfter: 5 * time.Second}
	}
	results := s.probeAll(r.Context(), src, probes)
	return &wireResponse{FormatVersion: wireVersion, ObservedAddress: src.String(), Results: results}, nil
}

// init fills in the state the zero Server lacks.
func (s *Server) init() {
	s.limiter = newSourceLimiter(s.rate(), s.burst())
	s.failures = newSourceLimiter(s.rate(), s.burst())
	s.inFlight = make(chan struct{}, maxInFlight)
}

// admit checks the token, then takes a token from the rate limit of src.
// Requests without the right token spend from a table of their own, so
// however many sources send them, they never use up the room of clients
// that have it. They are rate limited all the same, so the token cannot be
// guessed faster than the rate allows: a source out of failed attempts is
// refused before its token is looked at, or a different answer would tell
// a guesser when it had guessed right.
func (s *Server) admit(r *http.Request, src netip.Addr) *serverError {
	now := s.now()
	if ok, wait := s.failures.peek(src, now); !ok {
		return rateLimited(wait)
	}
	if !s.authorized(r) {
		if ok, wait := s.failures.allow(src, now); !ok {
			return rateLimited(wait)
		}
		return refusal(http.StatusUnauthorized, "missing or wrong token")
	}
	if ok, wait := s.limiter.allow(src, now); !ok {
		return rateLimited(wait)
	}
	return nil
}

// rateLimited is the refusal of a source out of tokens for wait.
func rateLimited(wait time.Duration) *serverError {
	return &serverError{status: http.StatusTooManyRequests, msg: "rate limited", retryAfter: wait}
}

// authorized reports whether r carries the server's token, if it has one.
func (s *Server) authorized(r *http.Request) bool {
	if s.Token == "" {
		return true
	}
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	// Hashing first makes the comparison constant-time in the length too.
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	want := sha256.Sum256([]byte(s.Token))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// readRequest decodes and validates the body.
func (s *Server) readRequest(w http.ResponseWriter, r *http.Request) ([]wireProbe, *serverError) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	// Unknown fields are refused, nested ones included: a body naming an
	// address must fail loudly, not be quietly ignored.
	dec.DisallowUnknownFields()
	var req wireRequest
	if err := dec.Decode(&req); err != nil {
		return nil, decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, refusal(http.StatusBadRequest, "bad request body: data after the JSON object")
	}
	if req.FormatVersion != wireVersion {
		return nil, refusal(http.StatusBadRequest, "format_version %d is not supported; this server speaks %d", req.FormatVersion, wireVersion)
	}
	if err := s.validate(req.Probes); err != nil {
		return nil, err
	}
	return req.Probes, nil
}

// decodeError tells an oversized body from a malformed one.
func decodeError(err error) *serverError {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return refusal(http.StatusRequestEntityTooLarge, "request body is over %d bytes", tooBig.Limit)
	}
	return refusal(http.StatusBadRequest, "bad request body: %v", err)
}

// validate checks the probes asked for.
func (s *Server) validate(probes []wireProbe) *serverError {
	if len(probes) == 0 {
		return refusal(http.StatusUnprocessableEntity, "no probes asked for")
	}
	if max := s.maxPorts(); len(probes) > max {
		return refusal(http.StatusUnprocessableEntity, "%d probes asked for; this server allows at most %d per request", len(probes), max)
	}
	seen := make(map[wireProbe]bool, len(probes))
	for _, p := range probes {
		if !isKnownKind(p.Kind) {
			return refusal(http.StatusUnprocessableEntity, "unknown probe kind %q; known kinds: %v", p.Kind, Kinds())
		}
		if p.Port < 1 || p.Port > math.MaxUint16 {
			return refusal(http.StatusUnprocessableEntity, "port %d is out of range 1-65535", p.Port)
		}
		if seen[p] {
			return refusal(http.StatusUnprocessableEntity, "probe %s/%d is asked for twice", p.Kind, p.Port)
		}
		seen[p] = true
	}
	return nil
}

// isKnownKind reports whether k is one of Kinds.
func isKnownKind(k Kind) bool {
	for _, known := range Kinds() {
		if k == known {
			return true
		}
	}
	return false
}

// probeAll probes src on each port, a few at a time, under one deadline
// for the whole request. Results keep the request's order.
func (s *Server) probeAll(ctx context.Context, src netip.Addr, probes []wireProbe) []wireResult {
	ctx, cancel := context.WithTimeout(ctx, s.requestTime(len(probes)))
	defer cancel()
	results := make([]wireResult, len(probes))
	sem := make(chan struct{}, probeParallel)
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = s.probeOne(ctx, src, p)
		})
	}
	wg.Wait()
	return results
}

// probeOne runs one probe against src. The dialer it hands the prober
// refuses any other address, so even a probe that follows a redirect
// cannot reach a third party.
func (s *Server) probeOne(ctx context.Context, src netip.Addr, p wireProbe) wireResult {
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	addr := netip.AddrPortFrom(src, uint16(p.Port))
	opts := Options{Timeout: s.timeout(), Dialer: pinnedDialer{to: src}}
	res := s.probeFunc()(ctx, p.Kind, addr, opts)
	return resultToWire(p, res)
}

// writeServerError answers a refused request.
func writeServerError(w http.ResponseWriter, e *serverError) {
	if e.retryAfter > 0 {
		secs := max(1, int(math.Ceil(e.retryAfter.Seconds())))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	if e.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="portfwd probe server"`)
	}
	writeServerJSON(w, e.status, &wireResponse{FormatVersion: wireVersion, Error: e.msg})
}

// writeServerJSON writes v as the JSON body of a response.
func writeServerJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client hung up; nothing to tell it
}

func (s *Server) probeFunc() func(context.Context, Kind, netip.AddrPort, Options) Result {
	if s.Probe != nil {
		return s.Probe
	}
	return Run
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) maxPorts() int          { return positiveOr(s.MaxPorts, DefaultMaxPorts) }
func (s *Server) burst() int             { return positiveOr(s.Burst, DefaultBurst) }
func (s *Server) rate() float64          { return positiveOr(s.Rate, DefaultRate) }
func (s *Server) timeout() time.Duration { return positiveOr(s.Timeout, DefaultTimeout) }

// positiveOr is v, or def when v is not positive.
func positiveOr[T int | float64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// pinnedDialer dials only the one address it is pinned to: the source of
// the request being answered. Whatever a probe implementation does (follow
// an HTTP redirect, resolve a name), it cannot reach a third party.
type pinnedDialer struct {
	to netip.Addr
}

// errNotRequester refuses a dial to anything but the requester.
var errNotRequester = errors.New("the probe server only connects back to the address the request came from")

// DialContext dials address if it is the pinned IP, as a literal.
func (d pinnedDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
	default:
		return nil, fmt.Errorf("dialing %s %s: %w", network, address, errNotRequester)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil || ap.Addr().Unmap().WithZone("") != d.to.Unmap().WithZone("") {
		return nil, fmt.Errorf("dialing %s %s: %w", network, address, errNotRequester)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, address)
}

// Timeouts of the HTTP server: short, since a request is a few hundred
// bytes and its answer is ready once the probes are done.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	idleTimeout       = 60 * time.Second
	shutdownGrace     = 5 * time.Second
	maxHeaderBytes    = 8 << 10
)

// ListenAndServe runs s on each of addrs (such as ":8443", which takes
// IPv4 and IPv6 on one dual-stack socket, or an IPv4 and an IPv6
// address) until ctx is done, then shuts down gracefully: in-flight
// probes are cancelled and their answers sent. It logs where it listens
// and one line per request to log (nil discards). A nil error means ctx
// ended it.
func ListenAndServe(ctx context.Context, addrs []string, s *Server, log io.Writer) error {
	if err := s.checkProxyConfig(); err != nil {
		return fmt.Errorf("starting the probe server: %w", err)
	}
	if len(addrs) == 0 {
		return errors.New("starting the probe server: no address to listen on")
	}
	lns, err := listenAll(ctx, addrs)
	if err != nil {
		return err
	}
	log = forward.SyncWriter(log)
	hs := &http.Server{
		Handler:           logRequests(s, log),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      readTimeout + s.maxRequestTime(),
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          stdlog.New(log, "probe server: ", 0),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	served := s.start(hs, lns, log)
	select {
	case err := <-served:
		return fmt.Errorf("serving probe requests: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
		return fmt.Errorf("shutting down the probe server: %w", err)
	}
	for range lns {
		<-served
	}
	return nil
}

// listenAll listens on every address, or on none: on an error the
// listeners already open are closed.
func listenAll(ctx context.Context, addrs []string) ([]net.Listener, error) {
	var lc net.ListenConfig
	var lns []net.Listener
	for _, addr := range addrs {
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			for _, open := range lns {
				_ = open.Close()
			}
			return nil, fmt.Errorf("listening for probe requests on %s: %w", addr, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// start serves hs on each of lns, over TLS when s.TLS is set, and says
// where once it listens; the channel gets what serving on each ended
// with.
func (s *Server) start(hs *http.Server, lns []net.Listener, log io.Writer) <-chan error {
	served := make(chan error, len(lns))
	https := ""
	if s.TLS != nil {
		hs.TLSConfig, https = s.TLS.Clone(), " (HTTPS)"
	}
	for _, ln := range lns {
		fmt.Fprintf(log, "probe server listening on %s%s%s\n", ln.Addr(), families(ln.Addr()), https)
		go func() {
			if s.TLS == nil {
				served <- hs.Serve(ln)
				return
			}
			served <- hs.ServeTLS(ln, "", "")
		}()
	}
	return served
}

// families says which address families a listener on addr takes, when
// its address does not say: a wildcard IPv6 socket, as Go opens for
// ":8443", takes IPv4 as well.
func families(addr net.Addr) string {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil || !ap.Addr().IsUnspecified() || !ap.Addr().Is6() {
		return ""
	}
	return " (IPv4 and IPv6)"
}

// maxRequestTime is the longest a request can spend probing.
func (s *Server) maxRequestTime() time.Duration { return s.requestTime(s.maxPorts()) }

// requestTime is the deadline of a request for n probes: enough for each
// round of probeParallel probes to use its whole timeout.
func (s *Server) requestTime(n int) time.Duration {
	rounds := (n + probeParallel - 1) / probeParallel
	return time.Duration(rounds)*s.timeout() + requestSlack
}

// logRequests logs one line per request: source, request, status, time.
func logRequests(next http.Handler, log io.Writer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		fmt.Fprintf(log, "%s %s %s %d %s\n", r.RemoteAddr, r.Method, r.URL.Path, rec.status, time.Since(start).Round(time.Millisecond))
	})
}

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}
