package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// unitFile is a systemd unit's keys by section ("Service.ExecStart"),
// each with its values in order.
type unitFile map[string][]string

// readUnit parses the keys of a systemd unit file: enough to check what
// the shipped units say, not a full parser (no line continuations, which
// the shipped units do not use).
func readUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u, section := unitFile{}, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: not a key=value line in a section: %q", path, line)
			}
			u[section+"."+k] = append(u[section+"."+k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u unitFile) last(key string) string {
	if vs := u[key]; len(vs) > 0 {
		return vs[len(vs)-1]
	}
	return ""
}

// unitFiles are the shipped units, by name.
func unitFiles(t *testing.T) map[string]unitFile {
	paths, err := filepath.Glob("../../configs/systemd/*.service")
	if err != nil || len(paths) < 3 {
		t.Fatalf("found %d units (%v), want portfwd.service, portfwd-apply.service and portfwd-router.service", len(paths), err)
	}
	units := map[string]unitFile{}
	for _, p := range paths {
		units[filepath.Base(p)] = readUnit(t, p)
	}
	return units
}

// TestUnitsRunThisPortfwd checks every unit's ExecStart: the binary where
// make install puts it, and a command line this portfwd accepts.
func TestUnitsRunThisPortfwd(t *testing.T) {
	for name, u := range unitFiles(t) {
		args := strings.Fields(u.last("Service.ExecStart"))
		if len(args) < 2 || args[0] != "/usr/local/bin/portfwd" {
			t.Errorf("%s: ExecStart=%s, want /usr/local/bin/portfwd COMMAND …", name, strings.Join(args, " "))
			continue
		}
		root := newCmdRoot(testFactory())
		cmd, rest, err := root.Find(args[1:])
		if err == nil {
			err = cmd.ParseFlags(rest)
		}
		if err == nil {
			err = cmd.ValidateArgs(cmd.Flags().Args())
		}
		if err != nil || cmd == root {
			t.Errorf("%s: portfwd does not accept ExecStart's command line %q: %v", name, args[1:], err)
		}
	}
}

// TestRouterUnit checks that the router's unit can change the firewall:
// root, with the capabilities iptables needs, and no dynamic user.
func TestRouterUnit(t *testing.T) {
	units := unitFiles(t)
	u, ok := units["portfwd-router.service"]
	if !ok {
		t.Fatal("no configs/systemd/portfwd-router.service")
	}
	if u.last("Service.DynamicUser") == "yes" {
		t.Error("portfwd-router.service: DynamicUser=yes cannot change the firewall")
	}
	if user := u.last("Service.User"); user != "" && user != "root" {
		t.Errorf("portfwd-router.service: User=%s; the iptables backend runs as root", user)
	}
	caps := strings.Fields(u.last("Service.CapabilityBoundingSet"))
	for _, c := range []string{"CAP_NET_ADMIN", "CAP_NET_RAW"} {
		if !slices.Contains(caps, c) {
			t.Errorf("portfwd-router.service: CapabilityBoundingSet=%s lacks %s", strings.Join(caps, " "), c)
		}
	}
	if !strings.Contains(u.last("Service.ExecStart"), " daemon ") || u.last("Service.Type") != "notify" {
		t.Errorf("portfwd-router.service: want the daemon with Type=notify")
	}
	// The other units run as a dynamic user: they are for UPnP, PCP and
	// NAT-PMP, which need no privilege, and must say so.
	for _, name := range []string{"portfwd.service", "portfwd-apply.service"} {
		if units[name].last("Service.DynamicUser") != "yes" {
			t.Errorf("%s: want DynamicUser=yes (no privilege for UPnP, PCP and NAT-PMP)", name)
		}
	}
}

// TestDaemonHelpMatchesUnit keeps daemon --help's Restart= the units'.
func TestDaemonHelpMatchesUnit(t *testing.T) {
	m := regexp.MustCompile(`Restart=([a-z-]+)`).FindStringSubmatch(daemonHelp)
	if m == nil {
		t.Fatal("daemon --help names no Restart=")
	}
	for name, u := range unitFiles(t) {
		if r := u.last("Service.Restart"); r != "" && r != m[1] {
			t.Errorf("%s: Restart=%s, daemon --help says Restart=%s", name, r, m[1])
		}
	}
}

// TestUnitsVerify runs systemd-analyze verify on the units where it is
// installed: unknown keys and bad values fail. The binary is not at
// /usr/local/bin here, which is the one complaint allowed.
func TestUnitsVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		skipOutsideCI(t, "no systemd-analyze (package systemd)")
	}
	paths, _ := filepath.Glob("../../configs/systemd/portfwd*")
	dir := t.TempDir()
	var names []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, filepath.Join(dir, filepath.Base(p)))
		if err := os.WriteFile(names[len(names)-1], b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, _ := exec.Command(sa, append([]string{"verify", "--man=no"}, names...)...).CombinedOutput()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !strings.Contains(line, "Command /usr/local/bin/portfwd is not executable") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}
