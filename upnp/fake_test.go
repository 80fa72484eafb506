package upnp

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeIGD is a port-mapping gateway speaking real SOAP over httptest,
// behaving like miniupnpd unless a quirk knob says otherwise. Faults are
// served from testdata files captured in the shape routers send.
type fakeIGD struct {
	t        testing.TB
	desc     string // testdata root description file
	srv      *httptest.Server
	mu       sync.Mutex
	entries  []fakeEntry
	extIP    string
	secure   bool              // refuse internal clients other than the requester, with otherHost
	other    string            // fault file answered then: 718 as miniupnpd, 606 as others
	v2       bool              // WANIPConnection:2: leases capped at a week, GetListOfPortMappings
	finite   string            // fault file answered to a finite lease ("" accepts)
	addFault string            // fault file answered to every AddPortMapping
	getFault string            // fault file answered to every GetSpecificPortMappingEntry
	listEnd  string            // fault file past the end of the table
	listing  string            // testdata file answered to GetListOfPortMappings ("" lists entries)
	full     bool              // answer every GetListOfPortMappings with a full page, as a broken router did
	descVars map[string]string // "{{NAME}}" in the description becomes the value
	keepDesc bool              // a refresh keeps the old description, as miniupnpd 2.3.1 does
	// slow, when set, is how long the fake takes for an action with
	// these arguments before it answers, as a router whose table scan
	// slows every change; it gives up when the client does.
	slow    func(action string, args map[string]string) time.Duration
	actions []string
	gets    int
}

type fakeEntry struct {
	proto, client, desc string
	ext, port           int
	lease               int
	enabled             bool
}

func newFakeIGD(t testing.TB, desc string) *fakeIGD { return newFakeIGDOn(t, desc, "127.0.0.1") }

// newFakeIGDOn is a fake IGD listening on addr, a loopback address: on
// 127.0.0.2 and up it is another host than the gateway at 127.0.0.1.
func newFakeIGDOn(t testing.TB, desc, addr string) *fakeIGD {
	f := &fakeIGD{t: t, desc: desc, extIP: "50.60.70.1", secure: true, other: "soap-718-conflict.xml",
		listEnd: "soap-713-array-index-invalid.xml", v2: strings.HasPrefix(desc, "igd2")}
	f.srv = newServerOn(t, addr, http.HandlerFunc(f.serve))
	return f
}

// newServerOn is an httptest server on addr, a loopback address.
func newServerOn(t testing.TB, addr string, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// requests is how many requests of any kind the fake got.
func (f *fakeIGD) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gets + len(f.actions)
}

// rootURL is the LOCATION of the fake's root description.
func (f *fakeIGD) rootURL() string { return f.srv.URL + "/rootDesc.xml" }

func (f *fakeIGD) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		f.mu.Lock()
		f.gets++
		f.mu.Unlock()
		w.Header().Set("Content-Type", "text/xml")
		w.Write(f.description())
		return
	}
	_, action, _ := strings.Cut(strings.Trim(r.Header.Get("SOAPAction"), `"`), "#")
	args := soapArgs(r.Body)
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	if f.slow != nil && !wait(r.Context(), f.slow(action, args)) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, action)
	out, fault := f.act(action, args, host)
	if fault != "" {
		w.WriteHeader(http.StatusInternalServerError)
		w.Write(testdata(f.t, fault))
		return
	}
	if strings.HasPrefix(out, "<?xml") { // a whole captured answer
		w.Write([]byte(out))
		return
	}
	fmt.Fprintf(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:%sResponse xmlns:u="x">%s</u:%sResponse></s:Body></s:Envelope>`, action, out, action)
}

// wait waits d, or until ctx ends; it reports whether d passed.
func wait(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

// description is the root description, its placeholders filled in.
func (f *fakeIGD) description() []byte {
	b := testdata(f.t, f.desc)
	for k, v := range f.descVars {
		b = bytes.ReplaceAll(b, []byte("{{"+k+"}}"), []byte(v))
	}
	return b
}

// act runs one action; it returns the response arguments or a fault file.
func (f *fakeIGD) act(action string, a map[string]string, requester string) (string, string) {
	switch action {
	case "AddPortMapping":
		return "", f.add(a, requester)
	case "DeletePortMapping":
		if i := f.find(a); i >= 0 {
			f.entries = append(f.entries[:i], f.entries[i+1:]...)
			return "", ""
		}
		return "", "soap-714-no-such-entry.xml"
	case "GetSpecificPortMappingEntry":
		if f.getFault != "" {
			return "", f.getFault
		}
		if i := f.find(a); i >= 0 {
			return f.entries[i].args(false), ""
		}
		return "", "soap-714-no-such-entry.xml"
	case "GetGenericPortMappingEntry":
		i, _ := strconv.Atoi(a["NewPortMappingIndex"])
		if i >= len(f.entries) {
			return "", f.listEnd
		}
		return f.entries[i].args(true), ""
	case "GetListOfPortMappings":
		return f.portListing(a)
	case "GetExternalIPAddress":
		return "<NewExternalIPAddress>" + f.extIP + "</NewExternalIPAddress>", ""
	}
	return "", "soap-402-invalid-args.xml"
}

// add is miniupnpd's AddPortMapping: secure mode answers 718, as does a
// port held by another client; the same client refreshes.
func (f *fakeIGD) add(a map[string]string, requester string) string {
	e := fakeEntry{proto: a["NewProtocol"], client: a["NewInternalClient"], desc: a["NewPortMappingDescription"],
		enabled: a["NewEnabled"] == "1"}
	e.ext, _ = strconv.Atoi(a["NewExternalPort"])
	e.port, _ = strconv.Atoi(a["NewInternalPort"])
	e.lease, _ = strconv.Atoi(a["NewLeaseDuration"])
	switch {
	case f.addFault != "":
		return f.addFault
	case f.finite != "" && e.lease > 0:
		return f.finite
	case f.secure && e.client != requester:
		return f.other
	}
	if f.v2 && (e.lease == 0 || e.lease > 604800) {
		e.lease = 604800 // WANIPConnection:2 §2.3.16, as miniupnpd does
	}
	if i := f.find(a); i >= 0 {
		if f.entries[i].client != e.client {
			return "soap-718-conflict.xml"
		}
		if f.keepDesc {
			e.desc = f.entries[i].desc
		}
		f.entries[i] = e
		return ""
	}
	f.entries = append(f.entries, e)
	return ""
}

// portListing answers GetListOfPortMappings as miniupnpd does: a
// PortMappingList with prefixed elements inside CDATA, newest first (its
// rule order, not port order), cut at NewNumberOfPorts entries. Only IGD:2 descriptions have it.
func (f *fakeIGD) portListing(a map[string]string) (string, string) {
	if f.listing != "" {
		if strings.HasPrefix(f.listing, "soap-") {
			return "", f.listing
		}
		return string(testdata(f.t, f.listing)), ""
	}
	if !f.v2 {
		return "", "soap-402-invalid-args.xml" // miniupnpd: 401; either is a fault
	}
	start, _ := strconv.Atoi(a["NewStartPort"])
	end, _ := strconv.Atoi(a["NewEndPort"])
	n, _ := strconv.Atoi(a["NewNumberOfPorts"])
	var sel []fakeEntry
	for _, e := range slices.Backward(f.entries) {
		if e.proto == a["NewProtocol"] && e.ext >= start && e.ext <= end {
			sel = append(sel, e)
		}
	}
	if f.full {
		sel = fullPage(a["NewProtocol"], start, end, n)
	}
	return listingXML(sel, n), ""
}

// fullPage is n entries in ports start–end, repeating ports when the
// range is narrower than n: what a router that always fills the page sends.
func fullPage(proto string, start, end, n int) []fakeEntry {
	sel := make([]fakeEntry, n)
	for i := range sel {
		p := start + i%(end-start+1)
		sel[i] = fakeEntry{proto: proto, ext: p, port: p, client: "192.168.77.11", desc: "full", enabled: true}
	}
	return sel
}

// listingXML is a NewPortListing argument holding the first n of sel.
func listingXML(sel []fakeEntry, n int) string {
	var b strings.Builder
	b.WriteString(`<NewPortListing><![CDATA[<p:PortMappingList xmlns:p="urn:schemas-upnp-org:gw:WANIPConnection">`)
	for i, e := range sel {
		if i == n {
			break
		}
		fmt.Fprintf(&b, "<p:PortMappingEntry><p:NewRemoteHost></p:NewRemoteHost><p:NewExternalPort>%d</p:NewExternalPort>"+
			"<p:NewProtocol>%s</p:NewProtocol><p:NewInternalPort>%d</p:NewInternalPort><p:NewInternalClient>%s</p:NewInternalClient>"+
			"<p:NewEnabled>%d</p:NewEnabled><p:NewDescription>%s</p:NewDescription><p:NewLeaseTime>%d</p:NewLeaseTime></p:PortMappingEntry>",
			e.ext, e.proto, e.port, e.client, boolInt(e.enabled), e.desc, e.lease)
	}
	b.WriteString(`</p:PortMappingList>]]></NewPortListing>`)
	return b.String()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (f *fakeIGD) find(a map[string]string) int {
	for i, e := range f.entries {
		if strconv.Itoa(e.ext) == a["NewExternalPort"] && e.proto == a["NewProtocol"] {
			return i
		}
	}
	return -1
}

func (e fakeEntry) args(generic bool) string {
	var b strings.Builder
	if generic {
		fmt.Fprintf(&b, "<NewRemoteHost></NewRemoteHost><NewExternalPort>%d</NewExternalPort><NewProtocol>%s</NewProtocol>", e.ext, e.proto)
	}
	en := 0
	if e.enabled {
		en = 1
	}
	fmt.Fprintf(&b, "<NewInternalPort>%d</NewInternalPort><NewInternalClient>%s</NewInternalClient><NewEnabled>%d</NewEnabled>"+
		"<NewPortMappingDescription>%s</NewPortMappingDescription><NewLeaseDuration>%d</NewLeaseDuration>",
		e.port, e.client, en, e.desc, e.lease)
	return b.String()
}

// soapArgs collects the leaf elements of a SOAP request by local name.
func soapArgs(r io.Reader) map[string]string {
	args := map[string]string{}
	dec := xml.NewDecoder(r)
	var name string
	for {
		tok, err := dec.Token()
		if err != nil {
			return args
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			name = tok.Name.Local
			args[name] = ""
		case xml.CharData:
			args[name] += string(tok)
		}
	}
}

func testdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ssdpResponder answers M-SEARCHes on loopback with a fixed LOCATION,
// like a router's SSDP server. drop loses the first requests.
type ssdpResponder struct {
	conn     *net.UDPConn
	location string
	mu       sync.Mutex
	drop     int
	onlyST   string        // answer only this search target, as some ISP boxes do
	delay    time.Duration // how long after an M-SEARCH it answers
	requests [][]byte
}

func newSSDPResponder(t testing.TB, location string) *ssdpResponder {
	return newSSDPResponderOn(t, "127.0.0.1", location)
}

// newSSDPResponderOn is an ssdpResponder answering from addr, a loopback
// address: on 127.0.0.2 and up, another host than the gateway at 127.0.0.1.
func newSSDPResponderOn(t testing.TB, addr, location string) *ssdpResponder {
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(addr), 0)))
	if err != nil {
		t.Fatal(err)
	}
	s := &ssdpResponder{conn: conn, location: location}
	t.Cleanup(func() { conn.Close() })
	go s.serve()
	return s
}

func (s *ssdpResponder) port() uint16 { return uint16(s.conn.LocalAddr().(*net.UDPAddr).Port) }

func (s *ssdpResponder) addrPort() netip.AddrPort {
	ap := s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (s *ssdpResponder) serve() {
	buf := make([]byte, 2048)
	for {
		n, from, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if !s.record(buf[:n]) {
			continue
		}
		st := "upnp:rootdevice"
		for _, line := range strings.Split(string(buf[:n]), "\r\n") {
			if v, ok := strings.CutPrefix(line, "ST: "); ok {
				st = v
			}
		}
		s.mu.Lock()
		only, delay := s.onlyST, s.delay
		s.mu.Unlock()
		if only != "" && st != only {
			continue
		}
		answer := []byte("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: " + st +
			"\r\nUSN: uuid:x::" + st + "\r\nEXT:\r\nSERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.1\r\nLOCATION: " +
			s.location + "\r\n\r\n")
		if delay == 0 {
			s.conn.WriteToUDP(answer, from)
			continue
		}
		time.AfterFunc(delay, func() { s.conn.WriteToUDP(answer, from) })
	}
}

// record keeps the request and says whether to answer it.
func (s *ssdpResponder) record(b []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, bytes.Clone(b))
	if s.drop > 0 {
		s.drop--
		return false
	}
	return true
}

func (s *ssdpResponder) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// setOnlyST makes the responder answer only searches for st.
func (s *ssdpResponder) setOnlyST(st string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onlyST = st
}

func (s *ssdpResponder) setDrop(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop = n
}

// NewIGD (tests only) returns a backend for the IGD whose root device description is at
// rootDescURL (e.g. "http://192.168.1.1:5000/rootDesc.xml"), skipping SSDP.
// Every request goes to that URL's host (see onGateway).
func NewIGD(ctx context.Context, rootDescURL string) (*IGD, error) {
	loc, err := url.Parse(rootDescURL)
	if err != nil || loc.Host == "" {
		return nil, fmt.Errorf("UPnP description URL %q is not an absolute URL", rootDescURL)
	}
	return newIGDAt(ctx, loc, gatewayHost(loc))
}
