package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionOf(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "b16a21c0123456789abcdef0123456789abcdef0"
	for _, tt := range []struct {
		name    string
		stamped string
		info    *debug.BuildInfo
		want    string
	}{
		{"make build stamps git describe", "v1.2.0-3-gb16a21c-dirty", &debug.BuildInfo{Main: debug.Module{Version: "v1.1.0"}}, "v1.2.0-3-gb16a21c-dirty"},
		{"go install @v1.2.3", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3"},
		{"go build in a checkout, Go's pseudo-version", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261129173150-b16a21c01234+dirty"}, Settings: vcs(rev, "true")}, "v0.0.0-20261129173150-b16a21c01234+dirty"},
		{"devel with a VCS stamp", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "false")}, "dev-b16a21c01234"},
		{"devel, modified", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "true")}, "dev-b16a21c01234-dirty"},
		{"devel without VCS", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev"},
		{"no build info", "", nil, "dev"},
	} {
		if got := versionOf(tt.stamped, tt.info); got != tt.want {
			t.Errorf("%s: versionOf = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestMakeBuildVersion builds portfwd with `make build`, as a user of a
// checkout does, and checks that it prints what git describe says.
func TestMakeBuildVersion(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"make", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOutsideCI(t, fmt.Sprintf("no %s: %v", tool, err))
		}
	}
	describe := exec.Command("git", "describe", "--tags", "--always", "--dirty")
	describe.Dir = root
	want, err := describe.Output()
	if err != nil {
		skipOutsideCI(t, fmt.Sprintf("not a git checkout (git describe: %v)", err))
	}
	bin := t.TempDir()
	build := exec.Command("make", "--no-print-directory", "-s", "build", "BIN="+bin)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		got, err := exec.Command(filepath.Join(bin, "portfwd"), args...).Output()
		if err != nil {
			t.Fatalf("portfwd %s: %v", strings.Join(args, " "), err)
		}
		if w := "portfwd " + strings.TrimSpace(string(want)) + "\n"; string(got) != w {
			t.Errorf("portfwd %s printed %q, want %q (git describe)", strings.Join(args, " "), got, w)
		}
	}
}
