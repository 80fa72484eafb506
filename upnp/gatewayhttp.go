package upnp

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
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

// gatewayClient is the HTTP client for everything portfwd asks the
// gateway: every answer is read through answerBody.
func gatewayClient(timeout time.Duration) http.Client {
	return http.Client{Transport: &gatewayTransport{}, Timeout: timeout}
}

// gatewayTransport is the http.RoundTripper under gatewayClient. It wraps
// each answer's body in an answerBody.
type gatewayTransport struct {
	base http.RoundTripper // nil: http.DefaultTransport
}

// RoundTrip sends req.
func (t *gatewayTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
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
