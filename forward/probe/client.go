package probe

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// ProbePath is the one path the probe server answers on.
//
// The probe server is the outside vantage: a user runs it on a VPS or a
// friend's machine, and portfwd at home asks it (with Vantage) to probe
// the home's public address from there.
//
// # Wire format
//
// JSON over HTTP, format_version 1. The request:
//
//	POST /v1/probe
//	Authorization: Bearer <token>        (only when the server has a token)
//	Content-Type: application/json
//
//	{"format_version":1,"probes":[{"kind":"minecraft-java","port":25565},{"kind":"udp","port":19132}]}
//
// The body has no address field: the server probes only the address the
// request came from, the TCP peer of the HTTP connection. Unknown fields
// are rejected, so a client that believes it can name a target learns at
// once that it cannot.
//
// The answer (200), results in request order:
//
//	{"format_version":1,"observed_address":"203.0.113.9","results":[
//	  {"kind":"minecraft-java","port":25565,"answered":true,"latency_ms":12.5,"info":{"name":"A Minecraft Server","players":0,"max_players":20}},
//	  {"kind":"udp","port":19132,"answered":false,"latency_ms":0,"error_code":"no_answer","error":"no answer before the deadline"}]}
//
// error_code is "refused", "no_answer" or "bad_answer" for the errors of
// the same name (ErrRefused, ErrNoAnswer, ErrBadAnswer), or "other".
//
// A refused request answers {"format_version":1,"error":"..."} with
// 400 (malformed JSON, unknown field, wrong format_version), 401 (missing
// or wrong token), 404 (another path), 405 (not POST), 413 (body over
// 16 KiB), 422 (no probes, too many, unknown kind, port 0 or out of range,
// a probe listed twice), 429 (rate limited; Retry-After in seconds) or
// 503 (too many requests in flight; Retry-After).
const ProbePath = "/v1/probe"

// wireVersion is the format_version of requests and answers.
const wireVersion = 1

// Error codes for the three probe errors on the wire.
const (
	codeRefused   = "refused"
	codeNoAnswer  = "no_answer"
	codeBadAnswer = "bad_answer"
	codeOther     = "other"
)

// wireRequest is the body of POST /v1/probe.
type wireRequest struct {
	FormatVersion int         `json:"format_version"`
	Probes        []wireProbe `json:"probes"`
}

// wireProbe asks for one probe. Port is an int so that 0 and 70000 reach
// validation and get a 422 naming the port, not a JSON type error.
type wireProbe struct {
	Kind Kind `json:"kind"`
	Port int  `json:"port"`
}

// wireResponse is the body of every answer; Error is set on refusals.
type wireResponse struct {
	FormatVersion   int          `json:"format_version"`
	ObservedAddress string       `json:"observed_address,omitempty"`
	Results         []wireResult `json:"results,omitempty"`
	Error           string       `json:"error,omitempty"`
}

// wireResult is one probe's Result.
type wireResult struct {
	Kind      Kind    `json:"kind"`
	Port      uint16  `json:"port"`
	Answered  bool    `json:"answered"`
	LatencyMS float64 `json:"latency_ms"`
	Info      *Info   `json:"info,omitempty"`
	ErrorCode string  `json:"error_code,omitempty"`
	Error     string  `json:"error,omitempty"`
}

// resultToWire encodes res. Kind and port come from the request, not from what
// the prober says, so the answer always matches the question.
func resultToWire(p wireProbe, res Result) wireResult {
	out := wireResult{
		Kind:      p.Kind,
		Port:      uint16(p.Port),
		Answered:  res.Answered,
		LatencyMS: math.Round(float64(res.Latency.Microseconds())) / 1000,
	}
	if res.Info != (Info{}) {
		info := res.Info
		out.Info = &info
	}
	if !res.Answered || res.Err != nil {
		out.ErrorCode, out.Error = wireErrorCode(res.Err), wireErrorText(res.Err)
	}
	return out
}

// wireErrorCode names the probe error err wraps.
func wireErrorCode(err error) string {
	switch {
	case err == nil, errors.Is(err, ErrNoAnswer):
		return codeNoAnswer // an unanswered probe with no reason had no answer
	case errors.Is(err, ErrRefused):
		return codeRefused
	case errors.Is(err, ErrBadAnswer):
		return codeBadAnswer
	}
	return codeOther
}

// wireErrorText is err's message, or ErrNoAnswer's when there is none.
func wireErrorText(err error) string {
	if err == nil {
		return ErrNoAnswer.Error()
	}
	return err.Error()
}

// Request asks a probe server for one probe of the requester's own
// address: there is no address to give, the server probes the one the
// request comes from.
type Request struct {
	Kind Kind
	Port uint16
}

// RemoteVantage asks a probe server (portfwd probe-server, ListenAndServe)
// to probe this host's public address from outside. Its Probe method is
// what Check's Vantage needs.
//
// Each request goes over the address family of the address it is sent
// from (see Probe), since the server probes the address it sees: over
// IPv4 that is the home's public address, over IPv6 this host's own.
type RemoteVantage struct {
	// URL of the probe server, such as "http://vps.example.net:8443";
	// ProbePath is added unless the URL already ends with it.
	URL string
	// URL6, when set, is where requests over IPv6 go, for a server whose
	// URL does not reach it over IPv6 (an IPv4 literal, or a name without
	// an AAAA record): "http://[2001:db8::8]:8443". Empty means URL, for
	// both families.
	URL6 string
	// Token is sent as a bearer token when set. Over http:// it travels in
	// clear; it only keeps strangers from spending the server's rate limit.
	Token string
	// RootCAs, when set, are the certificate authorities an https:// probe
	// server's certificate must chain to, in place of the system's: for a
	// server with a self-signed certificate (probe-server --tls-cert).
	RootCAs *x509.CertPool
}

// clientTimeout bounds a request: longer than the server spends on
// DefaultMaxPorts probes of DefaultTimeout each.
const clientTimeout = 30 * time.Second

// maxAnswerBytes caps the answer read from a probe server.
const maxAnswerBytes = 1 << 20

// VantageError is a probe server's refusal of a request.
type VantageError struct {
	URL        string
	Status     int           // the HTTP status
	Message    string        // what the server said
	RetryAfter time.Duration // when rate limited or busy: how long to wait
}

func (e *VantageError) Error() string {
	prefix := "the probe server at " + e.URL + " refused"
	switch e.Status {
	case http.StatusUnauthorized:
		return prefix + ": bad or missing token; pass the token the probe server was started with"
	case http.StatusTooManyRequests:
		return fmt.Sprintf("%s: rate limited, retry in %s", prefix, e.RetryAfter)
	case http.StatusServiceUnavailable:
		return fmt.Sprintf("%s: busy, retry in %s", prefix, e.RetryAfter)
	}
	return fmt.Sprintf("%s: %s (HTTP %d)", prefix, e.Message, e.Status)
}

// Probe asks the probe server to run probes against the address it sees
// this request come from, which it returns as observed. The request leaves
// from from: its family is the family the request goes over (and the
// server probes), and a specified address is the source, so that over
// IPv6 the server sees, and probes, the address a pinhole opens rather
// than a temporary privacy address; an unspecified one (0.0.0.0, ::) lets
// the system choose. Results are in the order of probes, with Addr set to
// observed and the probe's port.
func (v RemoteVantage) Probe(ctx context.Context, from netip.Addr, probes []Request) (observed netip.Addr, results []Result, err error) {
	if len(probes) == 0 {
		return netip.Addr{}, nil, nil
	}
	v.URL = v.urlFor(forward.FamilyOf(from))
	req, err := v.newRequest(ctx, probes)
	if err != nil {
		return netip.Addr{}, nil, err
	}
	client := v.client(from)
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return netip.Addr{}, nil, v.unreachable(from, err)
	}
	defer resp.Body.Close()
	answer, err := v.readAnswer(resp)
	if err != nil {
		return netip.Addr{}, nil, err
	}
	return v.results(answer, probes, forward.FamilyOf(from))
}

// newRequest builds the POST for probes.
func (v RemoteVantage) newRequest(ctx context.Context, probes []Request) (*http.Request, error) {
	endpoint, err := v.endpoint()
	if err != nil {
		return nil, err
	}
	body := wireRequest{FormatVersion: wireVersion, Probes: make([]wireProbe, len(probes))}
	for i, p := range probes {
		body.Probes[i] = wireProbe{Kind: p.Kind, Port: int(p.Port)}
	}
	buf, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encoding the probe request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(buf))
	if err != nil {
		return nil, fmt.Errorf("probe server URL %q: %w", v.URL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if v.Token != "" {
		req.Header.Set("Authorization", "Bearer "+v.Token)
	}
	return req, nil
}

// endpoint is the URL to POST to.
func (v RemoteVantage) endpoint() (string, error) {
	u, err := url.Parse(v.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("probe server URL %q is not an http:// or https:// URL such as http://vps.example.net:8443", v.URL)
	}
	if !strings.HasSuffix(u.Path, ProbePath) {
		u = u.JoinPath(ProbePath)
	}
	return u.String(), nil
}

// client is an HTTP client whose connections leave from from (see
// Probe), trusting RootCAs when set. It goes through no proxy: a request
// through one would come from the proxy, and the server would probe that.
func (v RemoteVantage) client(from netip.Addr) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = familyDialer{from: from, url: v.URL}.DialContext
	if v.RootCAs != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: v.RootCAs, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Timeout: clientTimeout, Transport: t}
}

// readAnswer decodes the answer, turning a refusal into a *VantageError.
func (v RemoteVantage) readAnswer(resp *http.Response) (*wireResponse, error) {
	var answer wireResponse
	decodeErr := json.NewDecoder(io.LimitReader(resp.Body, maxAnswerBytes)).Decode(&answer)
	if resp.StatusCode != http.StatusOK {
		msg := answer.Error
		if decodeErr != nil || msg == "" {
			msg = resp.Status + "; the answer is not from a portfwd probe server"
		}
		return nil, &VantageError{URL: v.URL, Status: resp.StatusCode, Message: msg, RetryAfter: retryAfter(resp.Header)}
	}
	if decodeErr != nil {
		return nil, fmt.Errorf("reading the answer of the probe server at %s: %w", v.URL, decodeErr)
	}
	if answer.FormatVersion != wireVersion {
		return nil, fmt.Errorf("the probe server at %s answers in format_version %d, this portfwd reads %d; run the same portfwd version on both ends", v.URL, answer.FormatVersion, wireVersion)
	}
	return &answer, nil
}

// retryAfter reads a Retry-After in seconds; the probe server sends no
// HTTP dates. Missing or unreadable means a minute, to be safe.
func retryAfter(h http.Header) time.Duration {
	secs, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || secs < 0 {
		return time.Minute
	}
	return time.Duration(secs) * time.Second
}

// results checks that answer matches probes, asked over family, and
// converts its results.
func (v RemoteVantage) results(answer *wireResponse, probes []Request, family forward.Family) (netip.Addr, []Result, error) {
	observed, err := netip.ParseAddr(answer.ObservedAddress)
	if err != nil {
		return netip.Addr{}, nil, fmt.Errorf("the probe server at %s sent a bad observed_address: %w", v.URL, err)
	}
	observed = observed.Unmap()
	if forward.FamilyOf(observed) != family {
		return netip.Addr{}, nil, fmt.Errorf("the probe server at %s saw a request sent over %s come from %s: a proxy in front of it (or its --client-ip-header) does not pass the client's %s address, so it would probe the wrong address",
			v.URL, familyName(family), observed, familyName(family))
	}
	if len(answer.Results) != len(probes) {
		return netip.Addr{}, nil, fmt.Errorf("the probe server at %s answered %d probes of %d", v.URL, len(answer.Results), len(probes))
	}
	results := make([]Result, len(probes))
	for i, w := range answer.Results {
		if w.Kind != probes[i].Kind || w.Port != probes[i].Port {
			return netip.Addr{}, nil, fmt.Errorf("the probe server at %s answered %s/%d where %s/%d was asked", v.URL, w.Kind, w.Port, probes[i].Kind, probes[i].Port)
		}
		results[i] = resultFromWire(w, observed)
	}
	return observed, results, nil
}

// resultFromWire decodes one result of a probe of observed.
func resultFromWire(w wireResult, observed netip.Addr) Result {
	res := Result{
		Kind:     w.Kind,
		Addr:     netip.AddrPortFrom(observed, w.Port),
		Answered: w.Answered,
		Latency:  time.Duration(math.Round(w.LatencyMS * float64(time.Millisecond))),
	}
	if w.Info != nil {
		res.Info = *w.Info
	}
	if !w.Answered || w.Error != "" {
		res.Err = remoteError(w.ErrorCode, w.Error)
	}
	return res
}

// remoteProbeError is a probe error as a probe server reported it: its
// text, wrapping the sentinel its code names so errors.Is still works.
type remoteProbeError struct {
	msg      string
	sentinel error // nil for codeOther
}

func (e *remoteProbeError) Error() string { return e.msg }
func (e *remoteProbeError) Unwrap() error { return e.sentinel }

// remoteError rebuilds a probe error from its code and text. An unanswered
// probe without a code had no answer, whatever else it says.
func remoteError(code, msg string) error {
	var sentinel error
	switch code {
	case codeRefused:
		sentinel = ErrRefused
	case codeBadAnswer:
		sentinel = ErrBadAnswer
	case codeOther:
	default:
		sentinel = ErrNoAnswer
	}
	if msg == "" && sentinel != nil {
		msg = sentinel.Error()
	}
	return &remoteProbeError{msg: msg, sentinel: sentinel}
}
