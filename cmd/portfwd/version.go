package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set by `make build` from `git describe`:
// -ldflags "-X main.version=v1.2.3-4-gabcdef0". Empty otherwise, and then
// the module's build info names the version (see versionOf).
var version string

// currentVersion is the version this binary prints.
func currentVersion() string {
	info, _ := debug.ReadBuildInfo()
	return versionOf(version, info)
}

// versionOf picks the version to print: the one stamped with -ldflags
// (make build), else the module version Go recorded (`go install
// …@v1.2.3` records v1.2.3; go build in a checkout records a
// pseudo-version naming the commit, with +dirty for uncommitted changes),
// else the commit from the VCS stamp, else "dev". info may be nil.
func versionOf(stamped string, info *debug.BuildInfo) string {
	if stamped != "" {
		return stamped
	}
	if info == nil {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified == "true" {
		rev += "-dirty"
	}
	return "dev-" + rev
}

func newCmdVersion(f *factory) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print portfwd's version",
		Long: `version prints the version of this binary: the release it was installed
from (go install …@v1.2.3), or for a build from a checkout git describe
(make build) or the commit. portfwd --version prints the same.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if f.out.json {
				return f.out.JSON(map[string]any{"format_version": formatVersion, "version": currentVersion()})
			}
			_, err := fmt.Fprintln(f.IO.Out, "portfwd", currentVersion())
			return err
		},
	}
}

// setVersionFlag gives root --version (and -v), printing what `portfwd
// version` prints.
func setVersionFlag(root *cobra.Command) {
	root.Version = currentVersion()
	root.SetVersionTemplate("portfwd {{.Version}}\n")
}
