package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

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
		code := run(context.Background(), tt.args, newFactory(IOStreams{Out: &out, ErrOut: &errb}))
		if code != exitError || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 mentioning %q", tt.args, code, errb.String(), tt.want)
		}
	}
}
