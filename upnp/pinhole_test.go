package upnp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeFirewall is a WANIPv6FirewallControl:1 service behaving like
// miniupnpd's, over real SOAP. Its description is the lab miniupnpd's
// (testdata/igd2-ipv6-rootdesc.xml), with replace applied.
type fakeFirewall struct {
	t        *testing.T
	url      string
	replace  [2]string // old, new in the description
	mu       sync.Mutex
	holes    map[int]map[string]string // UniqueID → AddPinhole's arguments
	next     int
	used     map[int]bool // traffic passed (CheckPinholeWorking)
	enabled  bool
	inbound  bool
	refuse   int  // answer every AddPinhole with this code (606: secure mode)
	noCheck  bool // CheckPinholeWorking is not implemented (401), as the service allows
	requests []string
}

func newFakeFirewall(t *testing.T) *fakeFirewall {
	f := &fakeFirewall{t: t, holes: map[int]map[string]string{}, used: map[int]bool{}, next: 1, enabled: true, inbound: true}
	srv := newServerOn(t, "127.0.0.1", http.HandlerFunc(f.serve))
	f.url = srv.URL + "/rootDesc.xml"
	return f
}

func (f *fakeFirewall) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		w.Write([]byte(strings.ReplaceAll(string(testdata(f.t, "igd2-ipv6-rootdesc.xml")), f.replace[0], f.replace[1])))
		return
	}
	_, action, _ := strings.Cut(strings.Trim(r.Header.Get("SOAPAction"), `"`), "#")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, action)
	out, code := f.act(action, soapArgs(r.Body))
	if code != 0 {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>%d</errorCode><errorDescription></errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`, code)
		return
	}
	fmt.Fprintf(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:%sResponse xmlns:u="%s">%s</u:%sResponse></s:Body></s:Envelope>`, action, pinholeServiceType, out, action)
}

// act answers one action: the body's elements, or a UPnP error code.
func (f *fakeFirewall) act(action string, args map[string]string) (string, int) {
	id, _ := strconv.Atoi(args["UniqueID"])
	_, known := f.holes[id]
	switch {
	case action == "GetFirewallStatus":
		return fmt.Sprintf("<FirewallEnabled>%s</FirewallEnabled><InboundPinholeAllowed>%s</InboundPinholeAllowed>", soapBool(f.enabled), soapBool(f.inbound)), 0
	case action == "AddPinhole" && f.refuse != 0:
		return "", f.refuse
	case action == "AddPinhole":
		if id, ok := f.same(args); ok { // miniupnpd renews an identical pinhole under its ID
			f.holes[id]["LeaseTime"] = args["LeaseTime"]
			return fmt.Sprintf("<UniqueID>%d</UniqueID>", id), 0
		}
		f.holes[f.next] = args
		f.next++
		return fmt.Sprintf("<UniqueID>%d</UniqueID>", f.next-1), 0
	case action == "CheckPinholeWorking" && f.noCheck:
		return "", codeInvalidAction
	case !known:
		return "", codePinholeNoSuchEntry
	case action == "UpdatePinhole":
		f.holes[id]["LeaseTime"] = args["NewLeaseTime"]
		return "", 0
	case action == "DeletePinhole":
		delete(f.holes, id)
		return "", 0
	case action == "CheckPinholeWorking" && !f.used[id]:
		return "", codeNoTrafficReceived
	case action == "CheckPinholeWorking":
		return "<IsWorking>1</IsWorking>", 0
	}
	return "", codeInvalidAction
}

// same finds the pinhole AddPinhole's args open already, as miniupnpd
// does (upnp_find_inboundpinhole): same client, port and protocol.
func (f *fakeFirewall) same(args map[string]string) (int, bool) {
	for id, h := range f.holes {
		if h["InternalClient"] == args["InternalClient"] && h["InternalPort"] == args["InternalPort"] && h["Protocol"] == args["Protocol"] {
			return id, true
		}
	}
	return 0, false
}

// hole is a copy of the arguments pinhole id was opened or updated with,
// nil when the fake has no such pinhole.
func (f *fakeFirewall) hole(id uint16) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.holes[int(id)]
}

var labLANHost6 = netip.MustParseAddr("2a02:8000:77:1::10")

func TestPinholeLifecycle(t *testing.T) {
	f := newFakeFirewall(t)
	p, err := NewPinholeClient(testCtx(t), f.url, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSuffix(f.url, "/rootDesc.xml") + "/ctl/IP6FCtl"; p.ControlURL() != want {
		t.Errorf("ControlURL = %s, want %s", p.ControlURL(), want)
	}
	if st, err := p.GetFirewallStatus(testCtx(t)); err != nil || st != (FirewallStatus{Enabled: true, InboundAllowed: true}) {
		t.Errorf("GetFirewallStatus = %+v, %v; want both true", st, err)
	}
	id, err := p.AddPinhole(testCtx(t), Pinhole{Client: labLANHost6, Port: 25565, Protocol: "tcp", Lease: time.Hour})
	if err != nil {
		t.Fatalf("AddPinhole: %v", err)
	}
	want := map[string]string{"RemoteHost": "", "RemotePort": "0", "InternalClient": labLANHost6.String(),
		"InternalPort": "25565", "Protocol": "6", "LeaseTime": "3600"}
	got := f.hole(id)
	for k, v := range want {
		if a, ok := got[k]; !ok || a != v {
			t.Errorf("AddPinhole sent %s=%q (present: %v), want %q", k, a, ok, v)
		}
	}
	if err := p.UpdatePinhole(testCtx(t), id, 2*time.Hour); err != nil || f.hole(id)["LeaseTime"] != "7200" {
		t.Errorf("UpdatePinhole: %v; lease now %q, want 7200", err, f.hole(id)["LeaseTime"])
	}
	_, err = p.CheckPinholeWorking(testCtx(t), id)
	if soapCode(err) != codeNoTrafficReceived || !strings.Contains(err.Error(), "NoTrafficReceived") {
		t.Errorf("CheckPinholeWorking before traffic: %v, want 709 NoTrafficReceived", err)
	}
	f.mu.Lock()
	f.used[int(id)] = true
	f.mu.Unlock()
	if ok, err := p.CheckPinholeWorking(testCtx(t), id); !ok || err != nil {
		t.Errorf("CheckPinholeWorking after traffic = %v, %v; want true", ok, err)
	}
	if err := p.DeletePinhole(testCtx(t), id); err != nil || f.hole(id) != nil {
		t.Fatalf("DeletePinhole: %v; pinhole still there: %v", err, f.hole(id) != nil)
	}
	err = p.UpdatePinhole(testCtx(t), id, time.Hour)
	var se *SOAPError
	if !IsPinholeGone(err) || !errors.As(err, &se) || se.Action != "UpdatePinhole" || !strings.Contains(err.Error(), "open it again") {
		t.Errorf("UpdatePinhole of a deleted pinhole: %v; want 704 NoSuchEntry saying to open it again", err)
	}
}

func TestIsPinholeGone(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&SOAPError{Code: 704, Action: "UpdatePinhole"}, true},
		{&SOAPError{Code: 704, Action: "AddPinhole"}, true},
		{fmt.Errorf("renewing: %w", &SOAPError{Code: 402, Action: "UpdatePinhole"}), true}, // miniupnpd
		{&SOAPError{Code: 402, Action: "CheckPinholeWorking"}, true},
		{&SOAPError{Code: 402, Action: "DeletePinhole"}, true},
		{&SOAPError{Code: 402, Action: "AddPinhole"}, false},
		{&SOAPError{Code: 606, Action: "UpdatePinhole"}, false},
		{&SOAPError{Code: 709, Action: "CheckPinholeWorking"}, false},
		{errors.New("connection refused"), false},
		{nil, false},
	} {
		if got := IsPinholeGone(c.err); got != c.want {
			t.Errorf("IsPinholeGone(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestPinholeSecureModeSaysUseIPv6(t *testing.T) {
	f := newFakeFirewall(t)
	f.refuse = codeNotAuthorized
	p, err := NewPinholeClient(testCtx(t), f.url, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.AddPinhole(testCtx(t), Pinhole{Client: labLANHost6, Port: 25565, Protocol: "UDP", Lease: time.Hour})
	if soapCode(err) != codeNotAuthorized || !strings.Contains(err.Error(), "over IPv6 from the internal client's own address") {
		t.Errorf("AddPinhole refused in secure mode: %v; want 606 saying to ask over IPv6", err)
	}
}

func TestPinholeErrorsSayWhatToDo(t *testing.T) {
	for code, name := range pinholeCodeNames {
		err := pinholeError(&SOAPError{Code: code, Action: "AddPinhole"})
		var se *SOAPError
		if !errors.As(err, &se) || se.Code != code {
			t.Errorf("%d: errors.As finds no SOAPError %d in %v", code, code, err)
		}
		if want := fmt.Sprintf("UPnP error %d %s (AddPinhole): %s", code, name, pinholeHints[code]); err.Error() != want {
			t.Errorf("%d: %q, want %q", code, err, want)
		}
	}
	// The router's own description wins over the name.
	if err := pinholeError(&SOAPError{Code: 701, Description: "Full"}); !strings.HasPrefix(err.Error(), "UPnP error 701 Full:") {
		t.Errorf("701 with a description: %v", err)
	}
	if err := errors.New("dial tcp: refused"); pinholeError(err) != err {
		t.Error("a non-SOAP error was changed")
	}
}

func TestPinholeClientRefuses(t *testing.T) {
	f := newFakeFirewall(t)
	f.replace = [2]string{"WANIPv6FirewallControl:1", "WANIPv6FirewallControl:9"}
	if _, err := NewPinholeClient(testCtx(t), f.url, 0); err == nil || !strings.Contains(err.Error(), "offers no WANIPv6FirewallControl") {
		t.Errorf("a description without the service: %v", err)
	}
	f.replace = [2]string{"<controlURL>/ctl/IP6FCtl", "<controlURL>http://127.0.0.2:1/ctl/IP6FCtl"}
	if _, err := NewPinholeClient(testCtx(t), f.url, 0); err == nil || !strings.Contains(err.Error(), "elsewhere, refused") {
		t.Errorf("a control URL on another host: %v", err)
	}
	f.replace = [2]string{}
	p, err := NewPinholeClient(testCtx(t), f.url, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []Pinhole{
		{Client: netip.MustParseAddr("192.168.77.10"), Port: 1, Protocol: "TCP"},
		{Client: netip.MustParseAddr("::ffff:192.168.77.10"), Port: 1, Protocol: "TCP"},
		{Client: labLANHost6, Port: 1, Protocol: "SCTP"},
	} {
		if _, err := p.AddPinhole(testCtx(t), h); err == nil {
			t.Errorf("AddPinhole(%+v) succeeded", h)
		}
	}
	if len(f.requests) != 0 {
		t.Errorf("invalid pinholes reached the router: %v", f.requests)
	}
}

func TestPinholeLeaseBounds(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "1", time.Hour: "3600", 24 * time.Hour: "86400", 48 * time.Hour: "86400"} {
		if got := pinholeLease(d); got != want {
			t.Errorf("pinholeLease(%v) = %s, want %s", d, got, want)
		}
	}
}

// NewPinholeClient (for the tests: the backend finds the service with
// pinholes.find) reads the root description at rootURL (on the router's
// IPv6 address, for secure mode) and returns a client for its
// WANIPv6FirewallControl:1 service. timeout bounds each request; 0 is
// soapTimeout.
func NewPinholeClient(ctx context.Context, rootURL string, timeout time.Duration) (*PinholeClient, error) {
	loc, err := url.Parse(rootURL)
	if err != nil {
		return nil, fmt.Errorf("UPnP description URL %q: %w", rootURL, err)
	}
	host := gatewayHost(loc)
	root, _, err := fetchDescription(ctx, loc, host)
	if err != nil {
		return nil, fmt.Errorf("reading the UPnP description at %s: %w", loc.Redacted(), err)
	}
	control, ok := pinholeControl(root)
	if !ok {
		return nil, fmt.Errorf("the UPnP device at %s offers no WANIPv6FirewallControl service, so it cannot open IPv6 pinholes; open the port in the router's web page", loc.Redacted())
	}
	if err := onGateway(control, host); err != nil {
		return nil, fmt.Errorf("the UPnP description at %s names a WANIPv6FirewallControl control URL elsewhere, refused: %w", loc.Redacted(), err)
	}
	if timeout <= 0 {
		timeout = soapTimeout
	}
	return &PinholeClient{c: serviceClient{sc: soapClient(control, host), urn: pinholeServiceType}, control: control, timeout: timeout}, nil
}
