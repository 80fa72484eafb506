package lab

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Env is the lab as KEY=VALUE pairs, in a stable order: what `portfwd-lab
// up` prints, and a file a shell or Makefile can source.
func (l *Lab) Env() [][2]string {
	pid := 0
	if l.daemon != nil {
		pid = l.daemon.pid
	}
	return [][2]string{
		{"LAB_NAME", l.Name},
		{"LAB_WAN_NS", l.Namespace(WAN)},
		{"LAB_ROUTER_NS", l.Namespace(Router)},
		{"LAB_LAN_NS", l.Namespace(LAN)},
		{"LAB_WAN_HOST", l.WANHost.String()},
		{"LAB_ROUTER_WAN", l.RouterWAN.String()},
		{"LAB_ROUTER_LAN", l.RouterLAN.String()},
		{"LAB_LAN_HOST", l.LANHost.String()},
		{"LAB_LAN_HOST2", l.LANHost2.String()},
		{"LAB_ROOT_DESC_URL", l.RootDescURL},
		{"LAB_DIR", l.Dir},
		{"LAB_MINIUPNPD_PID", strconv.Itoa(pid)},
		{"LAB_IGDV1", strconv.FormatBool(l.opts.IGDv1)},
		{"LAB_CGNAT", strconv.FormatBool(l.opts.CGNAT)},
		{"LAB_SECURE_MODE", strconv.FormatBool(l.opts.secureMode())},
		{"LAB_DETACHED", strconv.FormatBool(l.opts.Detached)},
		{"LAB_NO_UPNP", strconv.FormatBool(l.opts.NoUPnP)},
		{"LAB_NO_NATPMP", strconv.FormatBool(l.opts.NoNATPMP)},
		{"LAB_PCP_THIRD_PARTY", strconv.FormatBool(l.opts.PCPThirdParty)},
		{"LAB_IPTABLES", strconv.FormatBool(l.opts.Iptables)},
		{"LAB_IPV6_ON", strconv.FormatBool(l.opts.IPv6On)},
		{"LAB_IPV6", strconv.FormatBool(l.opts.IPv6)},
		{"LAB_WAN_HOST6", addrString(l.WANHost6)},
		{"LAB_ROUTER_WAN6", addrString(l.RouterWAN6)},
		{"LAB_ROUTER_LAN6", addrString(l.RouterLAN6)},
		{"LAB_LAN_HOST6", addrString(l.LANHost6)},
		{"LAB_ROOT_DESC_URL6", l.RootDescURL6},
	}
}

// addrString is a's text, or empty for the zero address (no IPv6 lab).
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// Save writes Env to path (atomically: temp file, then rename) so that Load
// in a later process reaches the same lab.
func (l *Lab) Save(path string) error {
	var b bytes.Buffer
	for _, kv := range l.Env() {
		fmt.Fprintf(&b, "%s=%s\n", kv[0], kv[1])
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("saving lab state: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("saving lab state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("saving lab state: %w", err)
	}
	return nil
}

// Load reads a file written by Save. The returned Lab can run commands,
// Reboot and Down; its progress lines go to log, if not nil.
func Load(path string, log io.Writer) (*Lab, error) {
	env, err := readEnv(path)
	if err != nil {
		return nil, fmt.Errorf("loading lab state: %w", err)
	}
	l := &Lab{Name: env["LAB_NAME"], Dir: env["LAB_DIR"]}
	l.opts = Options{Log: log, IGDv1: env["LAB_IGDV1"] == "true", CGNAT: env["LAB_CGNAT"] == "true",
		Detached: env["LAB_DETACHED"] == "true", NoUPnP: env["LAB_NO_UPNP"] == "true",
		NoNATPMP: env["LAB_NO_NATPMP"] == "true", PCPThirdParty: env["LAB_PCP_THIRD_PARTY"] == "true",
		Iptables: env["LAB_IPTABLES"] == "true", IPv6On: env["LAB_IPV6_ON"] == "true",
		IPv6: env["LAB_IPV6"] == "true"}
	secure := env["LAB_SECURE_MODE"] != "false"
	l.opts.SecureMode = &secure
	if !strings.HasPrefix(l.Name, "pfl-") || l.Dir == "" {
		return nil, fmt.Errorf("loading lab state: %s is not a lab state file", path)
	}
	l.addresses()
	if pid, _ := strconv.Atoi(env["LAB_MINIUPNPD_PID"]); pid > 0 {
		l.daemon = &daemon{pid: pid}
	}
	return l, nil
}

func readEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	return env, sc.Err()
}

// Running reports whether the lab's namespaces exist and miniupnpd runs
// (in the iptables variant, which has none: the namespaces exist).
func (l *Lab) Running() bool {
	_, err := os.Stat(filepath.Join(netnsDir, l.Namespace(Router)))
	return err == nil && (l.opts.Iptables || l.daemon != nil && l.daemon.running())
}
