package upnp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cachedDiscover runs Discover with a cache in dir against responder r.
func cachedDiscover(t *testing.T, dir string, r *ssdpResponder) *IGD {
	t.Helper()
	opts := loopbackOptions("127.0.0.1", r, nil)
	opts.CacheDir = dir
	g, err := Discover(testCtx(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestCacheHit: the second Discover sends no M-SEARCH and fetches no
// description, and the IGD it returns works and says the same.
func TestCacheHit(t *testing.T) {
	f := newFakeIGD(t, "igd2-rootdesc.xml")
	r := newSSDPResponder(t, f.rootURL())
	dir := t.TempDir()
	first := cachedDiscover(t, dir, r)
	searches, gets := r.count(), f.gets
	g := cachedDiscover(t, dir, r)
	if r.count() != searches || f.gets != gets {
		t.Errorf("cache hit sent %d M-SEARCHes and %d GETs", r.count()-searches, f.gets-gets)
	}
	if g.check == nil || strings.Join(g.Properties().Protocols, " ") != strings.Join(first.Properties().Protocols, " ") ||
		g.Properties().Gateway != first.Properties().Gateway || g.LocalAddr() != first.LocalAddr() || g.service != first.service {
		t.Errorf("cached %+v, discovered %+v", g.Properties(), first.Properties())
	}
	if _, err := g.List(testCtx(t)); err != nil || g.check.unproven() {
		t.Errorf("List through the cache: %v", err)
	}
}

// TestCacheStale: a cached control URL that no longer answers SOAP — the
// port is closed, or something else answers 404 — is dropped, the gateway
// rediscovered once, and the request retried.
func TestCacheStale(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)
	for name, control := range map[string]string{"refused": closed.URL + "/ctl", "404": notFound.URL + "/ctl"} {
		t.Run(name, func(t *testing.T) {
			f := newFakeIGD(t, "igd2-rootdesc.xml")
			f.entries = []fakeEntry{{proto: "TCP", ext: 40000, port: 40000, client: "127.0.0.1", desc: "portfwd:x", enabled: true}}
			r := newSSDPResponder(t, f.rootURL())
			dir := t.TempDir()
			writeStaleEntry(t, dir, cachedDiscover(t, dir, r), control)
			before := r.count()
			g := cachedDiscover(t, dir, r)
			if r.count() != before {
				t.Fatal("the stale entry was not used")
			}
			ms, err := g.List(testCtx(t))
			if err != nil || len(ms) != 1 {
				t.Fatalf("List = %v, %v; want the fake's mapping after rediscovery", ms, err)
			}
			e, ok := readCache(cachePath(dir, self))
			if r.count() == before || !ok || e.ControlURL == control || g.controlURL == control {
				t.Errorf("not rediscovered: %d searches, entry %+v", r.count()-before, e)
			}
		})
	}
}

// writeStaleEntry rewrites the cache entry of g with another control URL.
func writeStaleEntry(t *testing.T, dir string, g *IGD, control string) {
	e := entryFor(self, g)
	e.ControlURL = control
	if err := writeCache(cachePath(dir, self), e); err != nil {
		t.Fatal(err)
	}
}

// TestCacheSOAPFaultProves: a SOAP fault through a cached IGD proves the
// control URL; no rediscovery.
func TestCacheSOAPFaultProves(t *testing.T) {
	f := newFakeIGD(t, "igd2-rootdesc.xml")
	r := newSSDPResponder(t, f.rootURL())
	dir := t.TempDir()
	cachedDiscover(t, dir, r)
	f.extIP = "0.0.0.0"
	f.listing = "soap-606-not-authorized.xml"
	before := r.count()
	g := cachedDiscover(t, dir, r)
	if _, err := g.List(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if r.count() != before || g.check.unproven() {
		t.Errorf("a SOAP fault caused a rediscovery")
	}
}

func TestCacheCorruptIgnored(t *testing.T) {
	f := newFakeIGD(t, "igd1-rootdesc.xml")
	r := newSSDPResponder(t, f.rootURL())
	dir := t.TempDir()
	for _, junk := range []string{"{not json", `{"format_version": 99}`, `{"format_version": 1, "gateway": "127.0.0.1", "service_type": "x"}`} {
		if err := os.WriteFile(cachePath(dir, self), []byte(junk), 0o600); err != nil {
			t.Fatal(err)
		}
		before := r.count()
		if g := cachedDiscover(t, dir, r); g.check != nil || r.count() == before {
			t.Errorf("entry %q was used", junk)
		}
		if _, ok := readCache(cachePath(dir, self)); !ok {
			t.Errorf("discovery did not rewrite the entry after %q", junk)
		}
	}
}

func TestCacheRefresh(t *testing.T) {
	f := newFakeIGD(t, "igd1-rootdesc.xml")
	r := newSSDPResponder(t, f.rootURL())
	dir := t.TempDir()
	cachedDiscover(t, dir, r)
	before := r.count()
	opts := loopbackOptions("127.0.0.1", r, nil)
	opts.CacheDir, opts.Refresh = dir, true
	if g, err := Discover(testCtx(t), opts); err != nil || g.check != nil || r.count() == before {
		t.Errorf("Refresh used the cache: %v", err)
	}
}

// TestCacheWriteAtomic: the entry appears whole under its name, replaces
// the old one, and leaves no temp file; a write that cannot rename leaves
// the old entry alone.
func TestCacheWriteAtomic(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "portfwd")
	path := cachePath(dir, self)
	for _, url := range []string{"http://127.0.0.1:1/a", "http://127.0.0.1:1/b"} {
		if err := writeCache(path, cacheEntry{FormatVersion: cacheFormat, ControlURL: url}); err != nil {
			t.Fatal(err)
		}
		if e, ok := readCache(path); !ok || e.ControlURL != url {
			t.Errorf("read back %+v", e)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("dir holds %v; want the entry only", entries)
	}
	bad := filepath.Join(dir, "sub")
	os.MkdirAll(filepath.Join(bad, "x"), 0o700) // a non-empty directory cannot be renamed over
	if err := writeCache(bad, cacheEntry{}); err == nil {
		t.Error("rename over a directory succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("a failed write left %v", entries)
	}
}

func TestCacheTimeoutUnaffected(t *testing.T) {
	// A cache hit returns at once even with the shortest timeout.
	f := newFakeIGD(t, "igd2-rootdesc.xml")
	r := newSSDPResponder(t, f.rootURL())
	dir := t.TempDir()
	cachedDiscover(t, dir, r)
	opts := loopbackOptions("127.0.0.1", r, nil)
	opts.CacheDir, opts.Timeout = dir, time.Millisecond
	if _, err := Discover(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
}
