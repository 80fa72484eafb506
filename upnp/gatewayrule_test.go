package upnp

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// The gateway rule (onGateway): the description, every redirect hop and
// the control URL must be on the address that answered SSDP as the
// gateway. On loopback the gateway is 127.0.0.1 and "another host" is
// 127.0.0.2, unless a test says otherwise.

// TestNewIGDRefusesControlURLElsewhere: a description naming a control
// URL on another LAN host, or on portfwd's own loopback while the gateway
// is elsewhere, is refused before any SOAP request; a control URL or
// URLBase on the gateway's own address but another port is a real quirk,
// and used.
func TestNewIGDRefusesControlURLElsewhere(t *testing.T) {
	other := newFakeIGDOn(t, "igd2-rootdesc.xml", "127.0.0.2")
	samePort := newFakeIGD(t, "igd2-rootdesc.xml") // the gateway, another port
	tests := []struct {
		name, desc, gw, key, value string
		refused                    bool
	}{
		{"another LAN host", "igd2-absolute-controlurl-rootdesc.xml", "127.0.0.1", "CONTROL", "http://10.9.1.2:5000/ctl/IPConn", true},
		{"another host that answers", "igd2-absolute-controlurl-rootdesc.xml", "127.0.0.1", "CONTROL", other.srv.URL + "/ctl/IPConn", true},
		{"portfwd's own loopback", "igd2-absolute-controlurl-rootdesc.xml", "127.0.0.2", "CONTROL", "http://127.0.0.1:2375/v1.41/containers/db/kill", true},
		{"a host name", "igd2-absolute-controlurl-rootdesc.xml", "127.0.0.1", "CONTROL", "http://localhost:5000/ctl/IPConn", true},
		{"URLBase on another host", "igd1-urlbase-rootdesc.xml", "127.0.0.1", "URLBASE", other.srv.URL + "/", true},
		{"control URL on another port", "igd2-absolute-controlurl-rootdesc.xml", "127.0.0.1", "CONTROL", samePort.srv.URL + "/ctl/IPConn", false},
		{"URLBase on another port", "igd1-urlbase-rootdesc.xml", "127.0.0.1", "URLBASE", samePort.srv.URL + "/", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeIGDOn(t, tt.desc, tt.gw)
			f.descVars = map[string]string{tt.key: tt.value}
			before, beforeSame := other.requests(), samePort.requests()
			g, err := NewIGD(testCtx(t), f.rootURL())
			if tt.refused {
				if err == nil {
					t.Fatalf("NewIGD accepted the control URL %s", g.controlURL)
				}
				if !strings.Contains(err.Error(), "control URL elsewhere, refused") || !strings.Contains(err.Error(), "not on the gateway "+tt.gw) {
					t.Errorf("NewIGD = %v; want it to say what was refused and why", err)
				}
				t.Logf("%v", err)
			} else {
				if err != nil {
					t.Fatalf("NewIGD: %v", err)
				}
				if a, err := g.ExternalAddr(testCtx(t)); err != nil || samePort.requests() != beforeSame+1 {
					t.Errorf("ExternalAddr = %v, %v; want it answered on the other port", a, err)
				}
			}
			if other.requests() != before {
				t.Errorf("another host got %d requests", other.requests()-before)
			}
		})
	}
}

// redirectTo answers every request with a redirect to target's same path.
func redirectTo(target string, code int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target+r.URL.Path, code)
	})
}

// TestRedirectToAnotherHostRefused: neither the description fetch nor a
// SOAP request follows a redirect off the gateway; a redirect to another
// port of the gateway is followed.
func TestRedirectToAnotherHostRefused(t *testing.T) {
	other := newFakeIGDOn(t, "igd2-rootdesc.xml", "127.0.0.2")
	t.Run("description", func(t *testing.T) {
		srv := newServerOn(t, "127.0.0.1", redirectTo(other.srv.URL, http.StatusFound))
		_, err := NewIGD(testCtx(t), srv.URL+"/rootDesc.xml")
		if err == nil || !strings.Contains(err.Error(), "refusing the redirect from "+srv.URL+"/rootDesc.xml") {
			t.Errorf("NewIGD = %v; want the redirect refused", err)
		}
		t.Logf("%v", err)
	})
	t.Run("SOAP", func(t *testing.T) {
		f := newFakeIGD(t, "igd2-absolute-controlurl-rootdesc.xml")
		// goupnp sets no GetBody, so net/http follows a 307 or 308 to a POST
		// no further; a 302 it follows with a GET.
		ctl := newServerOn(t, "127.0.0.1", redirectTo(other.srv.URL, http.StatusFound))
		f.descVars = map[string]string{"CONTROL": ctl.URL + "/ctl/IPConn"}
		_, err := newTestIGD(t, f).ExternalAddr(testCtx(t))
		if err == nil || !strings.Contains(err.Error(), "refusing the redirect") {
			t.Errorf("ExternalAddr = %v; want the redirect refused", err)
		}
		t.Logf("%v", err)
	})
	if other.requests() != 0 {
		t.Errorf("the other host got %d requests", other.requests())
	}
	t.Run("same host, another port", func(t *testing.T) {
		f := newFakeIGD(t, "igd1-rootdesc.xml")
		srv := newServerOn(t, "127.0.0.1", redirectTo(f.srv.URL, http.StatusFound))
		if _, err := NewIGD(testCtx(t), srv.URL+"/rootDesc.xml"); err != nil || f.gets != 1 {
			t.Errorf("NewIGD = %v after %d GETs; want the redirect followed", err, f.gets)
		}
	})
}

// TestCacheEntryElsewhereIgnored: a cache entry whose control URL or root
// URL is on another host is not used: discovery runs again, rewrites the
// entry, and the other host gets nothing.
func TestCacheEntryElsewhereIgnored(t *testing.T) {
	other := newFakeIGDOn(t, "igd2-rootdesc.xml", "127.0.0.2")
	for _, field := range []string{"control", "root"} {
		t.Run(field, func(t *testing.T) {
			f := newFakeIGD(t, "igd2-rootdesc.xml")
			r := newSSDPResponder(t, f.rootURL())
			dir := t.TempDir()
			e := entryFor(self, cachedDiscover(t, dir, r))
			if field == "control" {
				e.ControlURL = other.srv.URL + "/ctl/IPConn"
			} else {
				e.RootURL = other.rootURL()
			}
			if err := writeCache(cachePath(dir, self), e); err != nil {
				t.Fatal(err)
			}
			before := r.count()
			g := cachedDiscover(t, dir, r)
			if _, err := g.List(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			got, _ := readCache(cachePath(dir, self))
			if g.check != nil || r.count() == before || strings.Contains(got.ControlURL+got.RootURL, "127.0.0.2") {
				t.Errorf("the entry on another host was used (searches %d, entry now %+v)", r.count()-before, got)
			}
		})
	}
	if other.requests() != 0 {
		t.Errorf("the other host got %d requests", other.requests())
	}
}

// TestDiscoverRefusesAnswerFromAnotherHost: a LAN device answering SSDP
// with a LOCATION on the gateway's address (say its admin pages) is not
// believed: portfwd fetches nothing, and names the device.
func TestDiscoverRefusesAnswerFromAnotherHost(t *testing.T) {
	f := newFakeIGD(t, "igd2-rootdesc.xml")
	rogue := newSSDPResponderOn(t, "127.0.0.2", f.rootURL())
	opts := loopbackOptions("127.0.0.1", nil, rogue)
	opts.Timeout = 300 * time.Millisecond
	_, err := Discover(context.Background(), opts)
	if !errors.Is(err, forward.ErrNoGateway) || !strings.Contains(err.Error(), "UPnP devices at [127.0.0.2] answered, but they are not the gateway") {
		t.Fatalf("Discover = %v; want ErrNoGateway naming 127.0.0.2", err)
	}
	if f.requests() != 0 {
		t.Errorf("the gateway got %d requests because another host said so", f.requests())
	}
}

// TestGatewayTransportRefuses: the transport itself refuses a request off
// the gateway, whatever built it.
func TestGatewayTransportRefuses(t *testing.T) {
	other := newFakeIGDOn(t, "igd2-rootdesc.xml", "127.0.0.2")
	hc := gatewayClient("127.0.0.1", time.Second)
	u, _ := url.Parse(other.rootURL())
	_, err := hc.Get(u.String())
	if err == nil || !strings.Contains(err.Error(), "refusing to send GET "+u.String()) || other.requests() != 0 {
		t.Errorf("Get = %v; want it refused and nothing sent", err)
	}
}

// TestGatewayIgnoresProxy: requests to the gateway never go through the
// environment's HTTP proxy. (net/http never proxies loopback, and reads
// the environment once per process, so a fake cannot show it: the
// transport's setting is what is checked.)
func TestGatewayIgnoresProxy(t *testing.T) {
	if directTransport.Proxy != nil {
		t.Error("the gateway's transport has a proxy function; the gateway is on the LAN and must be reached directly")
	}
}
