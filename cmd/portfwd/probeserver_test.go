package main

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// probeServerRun runs probe-server with args and returns the options it
// resolved, or the error it stopped with.
func probeServerRun(t *testing.T, args ...string) (*probeServerOptions, error) {
	t.Helper()
	var got *probeServerOptions
	cmd := newCmdProbeServerRun(testFactory(), func(_ context.Context, o *probeServerOptions) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	return got, cmd.ExecuteContext(context.Background())
}

func writeToken(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestProbeServerToken: the token comes from --token-file or --token,
// else from $PORTFWD_PROBE_TOKEN, so that it need not show in ps.
func TestProbeServerToken(t *testing.T) {
	t.Setenv(probeTokenEnv, " from-env\n")
	file := writeToken(t, "from-file\nsecond line is ignored\n")
	tests := []struct {
		args []string
		want string
	}{
		{nil, "from-env"},
		{[]string{"--token-file", file}, "from-file"},
		{[]string{"--token", "from-flag"}, "from-flag"},
	}
	for _, tt := range tests {
		got, err := probeServerRun(t, tt.args...)
		if err != nil || got.Server.Token != tt.want {
			t.Errorf("%v: token %q, %v; want %q", tt.args, got.Server.Token, err, tt.want)
		}
	}
	t.Setenv(probeTokenEnv, "")
	if got, err := probeServerRun(t); err != nil || got.Server.Token != "" {
		t.Errorf("no token anywhere: %q, %v; want none", got.Server.Token, err)
	}
}

func TestProbeServerTokenErrors(t *testing.T) {
	tests := map[string][]string{
		"both given":   {"--token", "x", "--token-file", writeToken(t, "y")},
		"no such file": {"--token-file", filepath.Join(t.TempDir(), "missing")},
		"empty":        {"--token-file", writeToken(t, " \n")},
		"over":         {"--token-file", writeToken(t, strings.Repeat("x", maxTokenFileBytes+1))},
		"bad proxy":    {"--trusted-proxy", "proxy.example"},
		"zoned proxy":  {"--trusted-proxy", "fe80::1%eth0"},
		"cert alone":   {"--tls-cert", writeToken(t, "x")},
		"key alone":    {"--tls-key", writeToken(t, "x")},
		"bad pair":     {"--tls-cert", writeToken(t, "x"), "--tls-key", writeToken(t, "y")},
	}
	for name, args := range tests {
		if _, err := probeServerRun(t, args...); err == nil {
			t.Errorf("%s (%v): no error", name, args)
		}
	}
}

func TestProbeServerOptions(t *testing.T) {
	got, err := probeServerRun(t, "--listen", "127.0.0.1:9443", "--listen", "[::1]:9443", "--allow-private", "--trusted-proxy", "127.0.0.1,::1",
		"--trusted-proxy", "::ffff:10.0.0.2", "--client-ip-header", "X-Forwarded-For", "--rate", "2", "--burst", "4")
	if err != nil {
		t.Fatal(err)
	}
	s := got.Server
	wantProxies := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"), netip.MustParseAddr("10.0.0.2")}
	if !slices.Equal(got.Listen, []string{"127.0.0.1:9443", "[::1]:9443"}) || !s.AllowPrivate || !slices.Equal(s.TrustedProxies, wantProxies) ||
		s.ClientIPHeader != "X-Forwarded-For" || s.Rate != 2 || s.Burst != 4 {
		t.Errorf("probe-server options = %+v, server %+v", got, s)
	}
	if got, _ := probeServerRun(t); got.Server.AllowPrivate || len(got.Server.TrustedProxies) != 0 || got.Server.ClientIPHeader != "" ||
		!slices.Equal(got.Listen, []string{":8443"}) {
		t.Errorf("defaults: %+v, server %+v; want :8443 (IPv4 and IPv6), no private peers, no proxy", got, got.Server)
	}
}

// TestProbeServerHelp: --help names every way to give the token, and
// which wins.
func TestProbeServerHelp(t *testing.T) {
	cmd := newCmdProbeServer(testFactory())
	var out bytes.Buffer
	cmd.SetArgs([]string{"--help"})
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--token-file", "PORTFWD_PROBE_TOKEN", "a flag wins over the environment", "--trusted-proxy", "--client-ip-header", "--allow-private",
		"--tls-cert", "--tls-key", "Authorization header, never in the URL", "--via-ca"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("probe-server --help does not say %q:\n%s", want, out.String())
		}
	}
}
