package upnp

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"testing"

	"github.com/portfwd/portfwd/forward"
)

// findEntries are a router's table: one mapping of portfwd's among
// another program's.
var findEntries = []fakeEntry{
	{proto: "UDP", ext: 27015, port: 27016, client: "192.168.77.11", desc: "steam", lease: 3600},
	{proto: "TCP", ext: 25565, port: 25565, client: "192.168.77.10", desc: "portfwd:mc", enabled: true},
}

var findKey = forward.Key{Protocol: forward.TCP, ExternalPort: 25565}

// TestFindOneRequest: Find reads one mapping with one
// GetSpecificPortMappingEntry, whatever the table holds, on IGD:1 (where
// List takes one request per entry) and IGD:2; 714 is not found.
func TestFindOneRequest(t *testing.T) {
	for _, desc := range []string{"igd1-rootdesc.xml", "igd2-rootdesc.xml"} {
		t.Run(desc, func(t *testing.T) {
			f := newFakeIGD(t, desc)
			f.entries = slices.Clone(findEntries)
			g := newTestIGD(t, f)
			before := len(f.actions)
			m, found, err := g.Find(testCtx(t), findKey)
			want := forward.Mapping{Key: findKey, InternalHost: netip.MustParseAddr("192.168.77.10"),
				InternalPort: 25565, Description: "portfwd:mc", Enabled: true}
			if err != nil || !found || m != want {
				t.Errorf("Find = %+v, %v, %v; want %+v", m, found, err, want)
			}
			if _, found, err := g.Find(testCtx(t), forward.Key{Protocol: forward.UDP, ExternalPort: 25565}); found || err != nil {
				t.Errorf("Find of an absent key = %v, %v; want not found (714), no error", found, err)
			}
			if got := f.actions[before:]; !slices.Equal(got, []string{"GetSpecificPortMappingEntry", "GetSpecificPortMappingEntry"}) {
				t.Errorf("two Finds sent %v", got)
			}
		})
	}
}

// TestFindOtherFaultIsError: a fault other than 714 says nothing about the
// mapping; Find reports it as an error carrying the code.
func TestFindOtherFaultIsError(t *testing.T) {
	for _, fault := range []string{"soap-402-invalid-args.xml", "soap-501-action-failed.xml", "soap-606-not-authorized.xml"} {
		t.Run(fault, func(t *testing.T) {
			f := newFakeIGD(t, "igd1-rootdesc.xml")
			f.entries = slices.Clone(findEntries)
			f.getFault = fault
			if _, found, err := newTestIGD(t, f).Find(testCtx(t), findKey); err == nil || found || soapCode(err) == 0 {
				t.Errorf("Find = %v, %v; want an error with the SOAP code", found, err)
			}
		})
	}
}

// TestFindThroughCache: Find keeps the discovery cache's rules. A stale
// entry is rediscovered once and the lookup retried; a 714 through a fresh
// entry proves it, without rediscovery.
func TestFindThroughCache(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	f := newFakeIGD(t, "igd1-rootdesc.xml")
	f.entries = slices.Clone(findEntries)
	r := newSSDPResponder(t, f.rootURL())
	dir := t.TempDir()
	writeStaleEntry(t, dir, cachedDiscover(t, dir, r), closed.URL+"/ctl")
	before := r.count()
	g := cachedDiscover(t, dir, r)
	if m, found, err := g.Find(testCtx(t), findKey); err != nil || !found || m.Description != "portfwd:mc" {
		t.Fatalf("Find through a stale cache entry = %+v, %v, %v; want the mapping after rediscovery", m, found, err)
	}
	if r.count() == before || g.check.unproven() {
		t.Errorf("the stale entry was not rediscovered: %d searches", r.count()-before)
	}

	searches := r.count()
	g = cachedDiscover(t, dir, r)
	if _, found, err := g.Find(testCtx(t), forward.Key{Protocol: forward.TCP, ExternalPort: 1}); found || err != nil {
		t.Fatalf("Find of an absent key through the cache = %v, %v", found, err)
	}
	if r.count() != searches || g.check.unproven() {
		t.Errorf("a 714 through the cache did not prove it: %d searches, unproven %v", r.count()-searches, g.check.unproven())
	}
}
