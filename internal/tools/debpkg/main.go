// Command debpkg builds portfwd's Debian package with nfpm, as a Go module
// (no nfpm binary to download): `make package` stages the binary, the
// units, completions and man pages, then runs
//
//	go run . -root CHECKOUT -stage STAGE -version VERSION -arch ARCH -out DIST
//
// which reads configs/package/nfpm.yaml with ${STAGE}, ${VERSION} and
// ${ARCH} filled in and writes DIST/portfwd_VERSION_ARCH.deb, printing its
// path. It is a module of its own so that nfpm's dependencies stay out of
// portfwd's go.mod.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
)

func main() {
	root := flag.String("root", ".", "the portfwd checkout (paths in the config are relative to it)")
	config := flag.String("config", "configs/package/nfpm.yaml", "the nfpm config, relative to -root")
	stage := flag.String("stage", "", "the staged files: portfwd, systemd/, completions/, man/")
	version := flag.String("version", "", "the version portfwd --version prints")
	arch := flag.String("arch", "amd64", "the Go architecture (amd64, arm64, arm)")
	out := flag.String("out", "dist", "the directory the package is written to")
	flag.Parse()
	path, err := build(*root, *config, *stage, DebianVersion(*version), *arch, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "debpkg:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}

// build writes the package and returns its path.
func build(root, config, stage, version, arch, out string) (string, error) {
	if stage == "" || version == "" {
		return "", errors.New("-stage and -version are required")
	}
	stage, err := filepath.Abs(stage)
	if err != nil {
		return "", err
	}
	out, err = filepath.Abs(out)
	if err != nil {
		return "", err
	}
	if err := os.Chdir(root); err != nil {
		return "", err
	}
	env := map[string]string{"STAGE": stage, "VERSION": version, "ARCH": arch}
	cfg, err := nfpm.ParseFileWithEnvMapping(config, func(k string) string { return env[k] })
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", config, err)
	}
	info, err := cfg.Get("deb")
	if err != nil {
		return "", err
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", fmt.Errorf("preparing the package: %w", err)
	}
	return write(info, out)
}

// write packages info into a file named as Debian names packages.
func write(info *nfpm.Info, out string) (string, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(out, deb.Default.ConventionalFileName(info))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := deb.Default.Package(info, f); err != nil {
		f.Close()
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, f.Close()
}

// DebianVersion is the package version for what portfwd --version prints:
// a release's without the leading v (v1.2.3-4-gabc1234 is
// 1.2.3-4-gabc1234), and anything that does not start like a release
// (a commit, as git describe gives in a checkout without tags: c404f8f-dirty,
// or dev-…) with 0~git in front, so that it sorts before every release.
// TestLabPackage checks the package against this rule.
func DebianVersion(v string) string {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	if !release.MatchString(v) {
		v = "0~git" + v
	}
	return v
}

// release is the start of a release's version: 1.2.
var release = regexp.MustCompile(`^[0-9]+\.[0-9]`)
