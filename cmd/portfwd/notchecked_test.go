package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/probe"
)

// TestCheckThatCouldNotRunFails: a probe server that refuses the token,
// or that nothing listens for, leaves every verdict inconclusive — and
// that used to exit 0, passing a script that never checked anything. It
// exits 5 now, for check and for the check after apply, saying why.
func TestCheckThatCouldNotRunFails(t *testing.T) {
	t.Setenv("PORTFWD_STATE_DIR", t.TempDir())
	server, err := net.Listen("tcp", "0.0.0.0:0") // the local layer passes: something listens, on every address
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	port := server.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	gw := filepath.Join(dir, "gateway.json")
	// A public WAN address, so that only the outside layer is in doubt;
	// nothing dials it: with --via there is no hairpin test.
	if err := os.WriteFile(gw, []byte(`{"external": "8.8.8.8"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "gateway: {lease: 0}\nrules:\n  - {name: web, protocol: tcp, external_port: %d}\n", port), 0o644); err != nil {
		t.Fatal(err)
	}
	// The probe server, seeing the request come from a public address (it
	// never probes loopback): the token is what it refuses.
	ps := &probe.Server{Token: "right"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.RemoteAddr = "8.8.4.4:40000"
		ps.ServeHTTP(w, r)
	}))
	defer srv.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String()
	closed.Close()

	runOn := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		f := newFactory(IOStreams{Out: &out, ErrOut: &errb})
		f.Openers, f.Memory = func(o openOptions) []forward.Opener { return fileGatewayOpeners(gw, time.Second) }, nil
		return run(context.Background(), args, f), out.String() + errb.String()
	}
	if code, out := runOn("apply", "--no-probe", cfg); code != exitOK {
		t.Fatalf("apply: exit %d: %s", code, out)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "--via", srv.URL, "--token", "WRONG", cfg}, "bad or missing token"},
		{[]string{"check", "--via", closedURL, cfg}, "cannot reach the probe server"},
		{[]string{"check", "-o", "json", "--via", closedURL, cfg}, "portfwd: nothing was checked from outside"},
		{[]string{"apply", "--via", srv.URL, "--token", "WRONG", cfg}, "the forwards are in place, but nothing was checked from outside"},
	} {
		code, out := runOn(tt.args...)
		if code != exitNotChecked || !strings.Contains(out, tt.want) || !strings.Contains(out, "inconclusive") {
			t.Errorf("%v: exit %d; want %d, inconclusive and %q in:\n%s", tt.args, code, exitNotChecked, tt.want, out)
		}
	}
}
