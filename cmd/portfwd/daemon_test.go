package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/forward"
)

func loadTestConfig(t *testing.T, src string) *forward.Config {
	t.Helper()
	cfg, _, err := forward.Load(context.Background(), "portfwd.yaml", []byte(src), forward.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestDaemonRuleChanges(t *testing.T) {
	old := loadTestConfig(t, `rules:
  - {name: web, protocol: tcp, external_port: 8080}
  - {name: game, protocol: udp, external_port: 27015}
  - {name: ssh, protocol: tcp, external_port: 2222}
`)
	cfg := loadTestConfig(t, `gateway: {lease: 30m}
rules:
  - {name: ssh, protocol: tcp, external_port: 2222}
  - {name: web, protocol: tcp, external_port: 8081}
  - {name: mc, service: minecraft-java}
`)
	if got, want := ruleChanges(old, cfg), "~rule web, +rule mc, -rule game, gateway settings changed"; got != want {
		t.Errorf("ruleChanges = %q, want %q", got, want)
	}
	if got := ruleChanges(cfg, cfg); got != "no rule changed" {
		t.Errorf("ruleChanges of the same config = %q", got)
	}
}

func TestDaemonConfigErrorOnOneLine(t *testing.T) {
	_, _, err := forward.Load(context.Background(), "p.yaml", []byte("rules:\n  - name: web\n    externl_port: 80\n    protocol: tcp\n"), forward.LoadOptions{})
	if err == nil {
		t.Fatal("want a config error")
	}
	got := oneLine(err)
	if strings.Contains(got, "\n") || !strings.Contains(got, "p.yaml:3: rules[0].externl_port") {
		t.Errorf("oneLine = %q; want one line naming file, line and key", got)
	}
	if got := oneLine(errors.New("a\nb")); got != "a; b" {
		t.Errorf("oneLine of a plain error = %q", got)
	}
}

func TestDaemonRefusesBadFlagsAndConfigs(t *testing.T) {
	bad := writeConfig(t, "rules:\n  - name: web\n    externl_port: 80\n")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"daemon", "--interval", "0s", bad}, "--interval"},
		{[]string{"daemon", "--check", "1ms", bad}, "--check"},
		{[]string{"daemon", bad}, filepath.Base(bad) + ":3: rules[0].externl_port"},
		{[]string{"daemon", filepath.Join(t.TempDir(), "missing.yaml")}, "missing.yaml"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tt.args, IOStreams{Out: &out, ErrOut: &errb})
		if code != exitError || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 mentioning %q", tt.args, code, errb.String(), tt.want)
		}
	}
}
