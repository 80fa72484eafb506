package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/internal/lab"
)

// TestLabPackage builds the Debian package with make package, as on a
// fresh clone, unpacks it into a throwaway root (dpkg-deb -x) and uses
// what it holds: the binary's version against git describe and the
// package's Version, the completions, every man page through man, the
// conffile, the units (systemd-analyze verify against that root), and the
// packaged /etc/portfwd/portfwd.yaml planned by the packaged binary on the
// lab's LAN host against miniupnpd.
func TestLabPackage(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	for _, tool := range []string{"make", "git", "dpkg-deb", "man"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOutsideCI(t, fmt.Sprintf("no %s (make test installs it): %v", tool, err))
		}
	}
	deb, root := buildPackage(t)
	version := strings.TrimPrefix(runOut(t, filepath.Join(root, "usr/bin/portfwd"), "--version"), "portfwd ")
	checkPackageVersion(t, deb, strings.TrimSpace(version))
	checkPackagedCompletions(t, root)
	checkPackagedManPages(t, root)
	checkPackagedUnits(t, root)
	if got := runOut(t, "dpkg-deb", "-f", deb, "Package"); got != "portfwd\n" {
		t.Errorf("Package: %q", got)
	}
	ctrl := t.TempDir()
	runOut(t, "dpkg-deb", "-e", deb, ctrl)
	if b, _ := os.ReadFile(filepath.Join(ctrl, "conffiles")); string(b) != "/etc/portfwd/portfwd.yaml\n" {
		t.Errorf("conffiles = %q, want /etc/portfwd/portfwd.yaml alone", b)
	}
	res := portfwdPackaged(t, l, root, "plan", filepath.Join(root, "etc/portfwd/portfwd.yaml"))
	if res.code != 0 || !strings.Contains(res.stdout+res.stderr, l.RootDescURL) || !strings.Contains(res.stdout+res.stderr, "Plan: 0 to create") {
		t.Errorf("the packaged binary's plan of the packaged config: exit %d, want 0 naming the lab's router\n%s%s", res.code, res.stdout, res.stderr)
	}
}

// buildPackage runs make package into a temporary directory and unpacks
// the one .deb it made; it returns the package and the root it was
// unpacked into.
func buildPackage(t *testing.T) (deb, root string) {
	t.Helper()
	src, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	build := exec.Command("make", "--no-print-directory", "-s", "package", "BIN="+filepath.Join(tmp, "bin"), "DIST="+filepath.Join(tmp, "dist"))
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make package: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "dist", "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make package made %v, want one .deb in DIST", debs)
	}
	root = filepath.Join(tmp, "root")
	runOut(t, "dpkg-deb", "-x", debs[0], root)
	return debs[0], root
}

// checkPackageVersion: the binary says what git describe says, and the
// package's Version is that, as a Debian version (debpkg's DebianVersion).
func checkPackageVersion(t *testing.T, deb, binary string) {
	t.Helper()
	describe := exec.Command("git", "describe", "--tags", "--always", "--dirty")
	describe.Dir = "../.."
	want, err := describe.Output()
	if err != nil {
		t.Fatalf("git describe: %v", err)
	}
	if binary != strings.TrimSpace(string(want)) {
		t.Errorf("the packaged portfwd --version says %q, git describe %q", binary, want)
	}
	debVersion := strings.TrimPrefix(binary, "v")
	if !regexp.MustCompile(`^[0-9]+\.[0-9]`).MatchString(debVersion) {
		debVersion = "0~git" + debVersion
	}
	if got := strings.TrimSpace(runOut(t, "dpkg-deb", "-f", deb, "Version")); got != debVersion {
		t.Errorf("the package's Version is %q, want %q (portfwd --version %s)", got, debVersion, binary)
	}
	if filepath.Base(deb) != "portfwd_"+debVersion+"_"+debArch()+".deb" {
		t.Errorf("the package is named %s", filepath.Base(deb))
	}
}

// debArch is Debian's name for this machine's architecture.
func debArch() string {
	out, err := exec.Command("dpkg", "--print-architecture").Output()
	if err != nil {
		return "amd64"
	}
	return strings.TrimSpace(string(out))
}

// checkPackagedCompletions: the scripts in the standard places are the
// packaged binary's own, and they complete portfwd.
func checkPackagedCompletions(t *testing.T, root string) {
	t.Helper()
	bin := filepath.Join(root, "usr/bin/portfwd")
	for shell, path := range map[string]string{
		"bash": "usr/share/bash-completion/completions/portfwd",
		"zsh":  "usr/share/zsh/vendor-completions/_portfwd",
		"fish": "usr/share/fish/vendor_completions.d/portfwd.fish",
	} {
		b, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Errorf("no %s completion: %v", shell, err)
			continue
		}
		if got := runOut(t, bin, "completion", shell); got != string(b) || !strings.Contains(got, "portfwd") {
			t.Errorf("/%s is not what the packaged portfwd completion %s prints", path, shell)
		}
	}
}

// checkPackagedManPages renders every page with man, warnings on: each
// renders without a warning, and portfwd(1) names its commands' pages.
func checkPackagedManPages(t *testing.T, root string) {
	t.Helper()
	pages, _ := filepath.Glob(filepath.Join(root, "usr/share/man/man1/*.1.gz"))
	if len(pages) < 10 {
		t.Fatalf("%d man pages, want portfwd.1.gz and one per command", len(pages))
	}
	for _, p := range pages {
		cmd := exec.Command("man", "--warnings", "-P", "cat", "-l", p)
		cmd.Env = append(os.Environ(), "MANWIDTH=80", "LANG=C.UTF-8")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil || errb.Len() > 0 || out.Len() == 0 {
			t.Errorf("man -l %s: %v\n%s", filepath.Base(p), err, errb.String())
		}
		if filepath.Base(p) == "portfwd.1.gz" && (!strings.Contains(out.String(), "portfwd-apply(1)") || !strings.Contains(out.String(), "pf:<config name>:<rule>")) {
			t.Errorf("man portfwd:\n%s", out.String())
		}
	}
}

// checkPackagedUnits: the packaged units run /usr/bin/portfwd, and
// systemd-analyze verify finds nothing wrong with them.
func checkPackagedUnits(t *testing.T, root string) {
	t.Helper()
	units, _ := filepath.Glob(filepath.Join(root, "usr/lib/systemd/system/portfwd*"))
	if len(units) != 4 {
		t.Errorf("packaged units %v, want portfwd.service, portfwd-apply.service, portfwd-apply.timer, portfwd-router.service", units)
	}
	for _, u := range units {
		if start := readUnit(t, u).last("Service.ExecStart"); strings.HasSuffix(u, ".service") && !strings.HasPrefix(start, "/usr/bin/portfwd ") {
			t.Errorf("%s: ExecStart=%s, want /usr/bin/portfwd", filepath.Base(u), start)
		}
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		skipOutsideCI(t, "no systemd-analyze (package systemd)")
	}
	// The units name /usr/bin/portfwd, which this machine need not have
	// (a root of its own would lack the rest of systemd): its absence is
	// the one complaint allowed, as in TestUnitsVerify.
	out, _ := exec.Command(sa, append([]string{"verify", "--man=no"}, units...)...).CombinedOutput()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !strings.Contains(line, "Command /usr/bin/portfwd is not executable") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}

// portfwdPackaged runs the packaged binary on the lab's LAN host.
func portfwdPackaged(t *testing.T, l *lab.Lab, root string, args ...string) cli {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := l.Command(lab.LAN, filepath.Join(root, "usr/bin/portfwd"), args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(l.Dir, "cache"), "PORTFWD_STATE_DIR="+filepath.Join(l.Dir, "state"))
	err := cmd.Run()
	res := cli{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running the packaged portfwd: %v", err)
	}
	return res
}

// runOut runs a command and returns its output, failing the test if it fails.
func runOut(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr)
	}
	return string(out)
}
