package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/portfwd/portfwd/forward"
)

// The runF seam: each command resolves its flags into its options struct
// and hands that to run; here a test receives it instead.

func testFactory() *factory {
	return newFactory(IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
}

func execute(t *testing.T, cmd *cobra.Command, args ...string) {
	t.Helper()
	cmd.SetArgs(args)
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
}

func TestApplyAndDownOptions(t *testing.T) {
	file := writeConfig(t, "rules:\n  - {name: mc, service: minecraft-java}\n")
	var got *applyOptions
	capture := func(_ context.Context, o *applyOptions) error { got = o; return nil }

	execute(t, newCmdApply(testFactory(), capture), "--prune=false", "--enable-forwarding", "--via", "http://192.0.2.1:8443", "--token", "s", file)
	if got.Mode != forward.ModeApply || got.Prune || !got.EnableForwarding || got.NoProbe || len(got.Vantage.Via) != 1 || got.Vantage.Via[0] != "http://192.0.2.1:8443" || got.Vantage.Token != "s" {
		t.Errorf("apply options = %+v", got)
	}
	cfg, err := got.Config(context.Background())
	if err != nil || cfg.File != file || len(cfg.Rules) != 1 {
		t.Errorf("apply reads %v, %v; want %s", cfg, err, file)
	}

	execute(t, newCmdDown(testFactory(), capture), file)
	if got.Mode != forward.ModeDown || !got.Prune || !got.NoProbe {
		t.Errorf("down options = %+v; want ModeDown, pruning, no probe", got)
	}
}

func TestPlanStatusCheckOptions(t *testing.T) {
	var plan *planOptions
	execute(t, newCmdPlan(testFactory(), func(_ context.Context, o *planOptions) error { plan = o; return nil }), "--detailed-exitcode", "x.yaml")
	if !plan.DetailedExitCode || !plan.Prune || plan.Open == nil {
		t.Errorf("plan options = %+v", plan)
	}
	var check *checkOptions
	execute(t, newCmdCheck(testFactory(), func(_ context.Context, o *checkOptions) error { check = o; return nil }), "udp/19132")
	cfg, err := check.Config(context.Background())
	if err != nil || len(cfg.Rules) != 1 || cfg.Rules[0].Name != "udp-19132" || cfg.Gateway.Backend != forward.Auto {
		t.Errorf("check udp/19132 reads %+v, %v; want a one-off rule", cfg, err)
	}
}

func TestDaemonOptions(t *testing.T) {
	var got *daemonOptions
	execute(t, newCmdDaemon(testFactory(), func(_ context.Context, o *daemonOptions) error { got = o; return nil }),
		"--interval", "10m", "--check", "5s", "--cleanup-on-exit", "--metrics", "127.0.0.1:9567", "--log-format", "json", "--probe-interval", "1m", "d.yaml")
	if got.Interval != 10*time.Minute || got.Check != 5*time.Second || !got.Cleanup || !got.Prune ||
		got.Metrics != "127.0.0.1:9567" || got.LogFormat != "json" || got.ProbeInterval != time.Minute {
		t.Errorf("daemon options = %+v", got)
	}
	if path, err := got.Path(); err != nil || path != "d.yaml" {
		t.Errorf("daemon file = %q, %v", path, err)
	}
}
