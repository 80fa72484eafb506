package upnp

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// endlessGateway serves the description desc on GET (or, when desc is
// "", an endless one) and answers every POST with status and prefix
// followed by filler bytes that never end, as a broken or hostile gateway
// did in a review (1.9 GB of SOAP in 15 s).
func endlessGateway(t *testing.T, desc string, status int, prefix string) string {
	chunk := bytes.Repeat([]byte("A"), 64<<10)
	srv := newServerOn(t, "127.0.0.1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && desc != "" {
			w.Write(testdata(t, desc))
			return
		}
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		w.WriteHeader(status)
		w.Write([]byte(prefix))
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	return srv.URL + "/rootDesc.xml"
}

const (
	envelopeStart = `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>`
	endlessDesc   = `<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0"><device><friendlyName>`
)

// allocatedDuring is how many bytes f allocated (all goroutines).
func allocatedDuring(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestEndlessAnswersBounded: an endless description, SOAP answer, fault
// and listing each stop at maxAnswer with an error that names the request,
// in bounded memory, not at the timeout (no time is asserted: a loaded
// machine may be slow; an unbounded read fails as the timeout's error).
func TestEndlessAnswersBounded(t *testing.T) {
	tests := []struct {
		name, desc, prefix, want string
		status                   int
		call                     func(ctx context.Context, g *IGD) error
	}{
		{name: "description", status: http.StatusOK, prefix: endlessDesc, want: "answer to GET http://127.0.0.1:"},
		{name: "SOAP answer", desc: "igd1-rootdesc.xml", status: http.StatusOK, want: "answer to GetExternalIPAddress",
			prefix: envelopeStart + `<u:GetExternalIPAddressResponse xmlns:u="x"><NewExternalIPAddress>`,
			call:   func(ctx context.Context, g *IGD) error { _, err := g.ExternalAddr(ctx); return err }},
		{name: "fault", desc: "igd1-rootdesc.xml", status: http.StatusInternalServerError, want: "answer to DeletePortMapping",
			prefix: envelopeStart + `<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>`,
			call:   func(ctx context.Context, g *IGD) error { return g.Delete(ctx, mapping(25565, "127.0.0.1", 0)) }},
		{name: "listing", desc: "igd2-rootdesc.xml", status: http.StatusOK, want: "answer to GetListOfPortMappings",
			prefix: envelopeStart + `<u:GetListOfPortMappingsResponse xmlns:u="x"><NewPortListing><![CDATA[<p:PortMappingList><p:PortMappingEntry><p:NewDescription>`,
			call: func(ctx context.Context, g *IGD) error {
				_, err := g.listingPage(ctx, forward.TCP, 1, 65535)
				return err
			}},
		{name: "listing, then entry by entry", desc: "igd2-rootdesc.xml", status: http.StatusOK, want: "answer to GetGenericPortMappingEntry",
			prefix: envelopeStart + `<u:Response xmlns:u="x"><NewPortListing>`,
			call:   func(ctx context.Context, g *IGD) error { _, err := g.List(ctx); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := endlessGateway(t, tt.desc, tt.status, tt.prefix)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			var err error
			alloc := allocatedDuring(func() {
				var g *IGD
				g, err = NewIGD(ctx, url)
				if err == nil {
					err = tt.call(ctx, g)
				}
			})
			checkTooLarge(t, err, tt.want)
			if alloc > 64<<20 {
				t.Errorf("allocated %d MiB; want the answer cut at %d MiB", alloc>>20, maxAnswer>>20)
			}
		})
	}
}

// checkTooLarge checks err is the too-large error for want.
func checkTooLarge(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "exceeds "+strconv.Itoa(maxAnswer)+" bytes") {
		t.Fatalf("error %v; want the answer to %q refused past %d bytes", err, want, maxAnswer)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v came from the timeout", err)
	}
	t.Logf("%v", err)
}

// TestAnswerDeclaredTooLarge: an answer whose Content-Length is past
// maxAnswer is refused without reading it.
func TestAnswerDeclaredTooLarge(t *testing.T) {
	srv := newServerOn(t, "127.0.0.1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(maxAnswer+1))
		w.Write([]byte(endlessDesc))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := NewIGD(ctx, srv.URL+"/rootDesc.xml")
	checkTooLarge(t, err, "answer to GET "+srv.URL+"/rootDesc.xml")
}

// TestAnswerWithinBoundRead: an answer just under maxAnswer is read whole.
func TestAnswerWithinBoundRead(t *testing.T) {
	pad := bytes.Repeat([]byte(" "), maxAnswer-len(testdata(t, "igd1-rootdesc.xml"))-1)
	srv := newServerOn(t, "127.0.0.1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(append(testdata(t, "igd1-rootdesc.xml"), pad...))
	}))
	if _, err := NewIGD(testCtx(t), srv.URL+"/rootDesc.xml"); err != nil {
		t.Fatal(err)
	}
}
