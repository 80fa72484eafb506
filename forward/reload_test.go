package forward_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/forward"
)

func TestRuleChanges(t *testing.T) {
	old := loopConfig(t, `rules:
  - {name: web, protocol: tcp, external_port: 8080}
  - {name: game, protocol: udp, external_port: 27015}
  - {name: ssh, protocol: tcp, external_port: 2222}
`)
	cfg := loopConfig(t, `gateway: {lease: 30m}
rules:
  - {name: ssh, protocol: tcp, external_port: 2222}
  - {name: web, protocol: tcp, external_port: 8081}
  - {name: mc, service: minecraft-java}
`)
	if got, want := forward.RuleChanges(old, cfg), "~rule web, +rule mc, -rule game, gateway settings changed"; got != want {
		t.Errorf("RuleChanges = %q, want %q", got, want)
	}
	if got := forward.RuleChanges(cfg, cfg); got != "no rule changed" {
		t.Errorf("RuleChanges of the same config = %q", got)
	}
}

func TestOneLine(t *testing.T) {
	_, _, err := forward.Load(context.Background(), "p.yaml", []byte("rules:\n  - name: web\n    externl_port: 80\n    protocol: tcp\n"), forward.LoadOptions{})
	if err == nil {
		t.Fatal("want a config error")
	}
	got := forward.OneLine(err)
	if strings.Contains(got, "\n") || !strings.Contains(got, "p.yaml:3: rules[0].externl_port") {
		t.Errorf("OneLine = %q; want one line naming file, line and key", got)
	}
	if got := forward.OneLine(errors.New("a\nb")); got != "a; b" {
		t.Errorf("OneLine of a plain error = %q", got)
	}
}
