package upnp

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// maxAnswer bounds every body portfwd reads from the gateway: root
// descriptions, SOAP answers, faults and port listings. The largest real
// answer is a full GetListOfPortMappings page: listPage (1,000) entries of
// ~360 bytes plus the description in miniupnpd's layout
// (testdata/listing-miniupnpd-tcp.xml), under 1 MiB even escaped entity by
// entity; descriptions are a few KiB and faults under one. 4 MiB leaves
// room for verbose firmware and still stops an endless answer (a review
// measured 1.9 GB in 15 s) at once.
const maxAnswer = 4 << 20

// gatewayClient is the HTTP client for everything portfwd asks the gateway
// at host (see gatewayHost): every request and every redirect hop must go
// to that host, and every answer is read through answerBody.
func gatewayClient(host string, timeout time.Duration) http.Client {
	return http.Client{
		Transport:     &gatewayTransport{host: host},
		CheckRedirect: redirectOnGateway(host),
		Timeout:       timeout,
	}
}

// gatewayHost is the form of a URL's host the gateway rule compares: an IP
// address unmapped and without a zone, or a lower-case name.
func gatewayHost(u *url.URL) string {
	h := u.Hostname()
	if a, err := netip.ParseAddr(h); err == nil {
		return addrHost(a)
	}
	return strings.ToLower(h)
}

// addrHost is gatewayHost for an address.
func addrHost(a netip.Addr) string { return a.Unmap().WithZone("").String() }

// onGateway refuses a URL on another host than the gateway's. Any LAN
// device can answer SSDP or be named in a description, and a router that
// redirects elsewhere is not to be followed there, so portfwd only sends
// requests to the address that answered as the gateway; the port may
// differ, since routers serve their control URLs on another port than the
// description (URLBase) and miniupnpd picks a random one unless told.
func onGateway(u *url.URL, host string) error {
	if got := gatewayHost(u); got != host {
		return fmt.Errorf("%s is on %s, not on the gateway %s; portfwd sends requests only to the gateway that answered", u.Redacted(), got, host)
	}
	return nil
}

// redirectOnGateway is an http.Client CheckRedirect that follows a
// redirect only to the gateway itself, and at most 10 times, as
// net/http does by default.
func redirectOnGateway(host string) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return fmt.Errorf("stopped after 10 redirects")
		}
		if err := onGateway(req.URL, host); err != nil {
			return fmt.Errorf("refusing the redirect from %s: %w", via[len(via)-1].URL.Redacted(), err)
		}
		return nil
	}
}

// gatewayTransport is the http.RoundTripper under gatewayClient. It
// checks each request's host again, so no path (redirect or not) reaches
// another one, and wraps each answer's body in an answerBody.
type gatewayTransport struct {
	host string
	base http.RoundTripper // nil: directTransport
}

// directTransport is net/http's default transport without the proxy of
// the environment (HTTP_PROXY): the gateway is on the LAN, a proxy would
// not reach it, and the host check above must be where the connection
// really goes. Nor does it keep connections alive: routers' HTTP servers
// are small, and some (Linksys WRT120N) answer HTTP/1.1 without
// "Connection: close" and then close anyway, so the next request on the
// kept connection fails with a reset or EOF — and a SOAP POST is not
// retried by net/http. A new connection per request costs a LAN round
// trip; miniupnpd closes after every answer regardless.
var directTransport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DisableKeepAlives = true
	return t
}()

// RoundTrip sends req if it is for the gateway.
func (t *gatewayTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := onGateway(req.URL, t.host); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("refusing to send %s: %w", requestName(req), err)
	}
	base := t.base
	if base == nil {
		base = directTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &answerBody{body: resp.Body, size: resp.ContentLength, what: requestName(req)}
	return resp, nil
}

// requestName says which request an answer belongs to, for errors: the
// SOAP action, or the method and URL.
func requestName(req *http.Request) string {
	// goupnp sets the header as "SOAPACTION", outside Go's canonical form.
	for _, key := range []string{"SOAPACTION", "Soapaction"} {
		if v := req.Header[key]; len(v) > 0 {
			if _, action, ok := strings.Cut(strings.Trim(v[0], `"`), "#"); ok {
				return action
			}
		}
	}
	return req.Method + " " + req.URL.Redacted()
}

// answerBody is a gateway's answer as the XML decoders read it: whole, at
// most maxAnswer bytes, and made lenient (lenientXML). goupnp decodes
// straight from the body, so this is where both must happen. It is read
// on the first Read, which the caller's timeout covers.
type answerBody struct {
	body io.ReadCloser
	size int64 // Content-Length; -1 when unknown
	what string
	r    *bytes.Reader
	err  error
}

func (a *answerBody) Read(p []byte) (int, error) {
	if a.r == nil && a.err == nil {
		a.load()
	}
	if a.err != nil {
		return 0, a.err
	}
	return a.r.Read(p)
}

// load reads the whole answer, or fails once it passes maxAnswer.
func (a *answerBody) load() {
	if a.size > maxAnswer {
		a.err = tooLarge(a.what)
		return
	}
	b, err := io.ReadAll(io.LimitReader(a.body, maxAnswer+1))
	switch {
	case err != nil:
		a.err = err
	case len(b) > maxAnswer:
		a.err = tooLarge(a.what)
	default:
		a.r = bytes.NewReader(lenientXML(b))
	}
}

func (a *answerBody) Close() error { return a.body.Close() }

// tooLarge is the error for an answer to what past maxAnswer.
func tooLarge(what string) error {
	return fmt.Errorf("the gateway's answer to %s exceeds %d bytes, far more than any router sends, so portfwd stopped reading it; restart the router, or if it keeps doing so, %s",
		what, maxAnswer, otherProtocols)
}
