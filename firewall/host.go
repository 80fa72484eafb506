package firewall

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Files the preconditions read.
const (
	ipForwardPath   = "/proc/sys/net/ipv4/ip_forward"
	ipv6ForwardPath = "/proc/sys/net/ipv6/conf/all/forwarding"
	routePath       = "/proc/net/route"
)

// system is what the backend asks of the host outside iptables, so tests
// can check every precondition.
type system struct {
	geteuid    func() int
	lookPath   func(string) (string, error)
	realPath   func(string) (string, error) // the file a path names, links followed
	readFile   func(string) ([]byte, error)
	writeFile  func(string, []byte) error
	interfaces func() ([]netIface, error)
	version    func(cmd string) (string, error) // `iptables --version`, `ip6tables --version`
}

// netIface is a network interface and its addresses.
type netIface struct {
	name  string
	addrs []netip.Prefix
}

func hostSystem() system {
	return system{
		geteuid:  os.Geteuid,
		lookPath: exec.LookPath,
		realPath: filepath.EvalSymlinks,
		readFile: os.ReadFile,
		writeFile: func(name string, b []byte) error {
			return os.WriteFile(name, b, 0o644)
		},
		interfaces: hostInterfaces,
		version: func(cmd string) (string, error) {
			out, err := exec.Command(cmd, "--version").Output()
			return string(out), err
		},
	}
}

func hostInterfaces() ([]netIface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]netIface, 0, len(ifs))
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", ifi.Name, err)
		}
		ni := netIface{name: ifi.Name}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ip, _ := netip.AddrFromSlice(n.IP)
				bits, _ := n.Mask.Size()
				ni.addrs = append(ni.addrs, netip.PrefixFrom(ip.Unmap(), bits))
			}
		}
		out = append(out, ni)
	}
	return out, nil
}

// checkHost checks what New needs and returns the WAN interface, the
// warnings of a host that could not forward yet, and what it changed on
// the host (notes, said once). Each error says what to do.
func checkHost(opts Options, sys system) (wan string, warnings, notes []string, err error) {
	if sys.geteuid() != 0 {
		return "", nil, nil, errors.New("the iptables backend changes the firewall: run portfwd as root on the router")
	}
	if _, err := sys.lookPath("iptables"); err != nil {
		return "", nil, nil, errors.New("no iptables binary in PATH: install the iptables package (apt install iptables)")
	}
	wan = opts.WANInterface
	if wan == "" {
		if wan, err = defaultRouteInterface(sys); err != nil {
			return "", nil, nil, err
		}
	}
	ifs, err := sys.interfaces()
	if err != nil {
		return "", nil, nil, fmt.Errorf("listing network interfaces: %w", err)
	}
	if !slices.ContainsFunc(ifs, func(i netIface) bool { return i.name == wan }) {
		return "", nil, nil, fmt.Errorf("WAN interface %s not found; name the router's uplink with gateway.wan_interface or --wan-interface (ip -br link lists them)", wan)
	}
	turnedOn, err := checkForwarding(opts, sys)
	if err != nil {
		if !opts.Inspect {
			return "", nil, nil, err
		}
		warnings = append(warnings, err.Error())
	}
	if turnedOn {
		notes = append(notes, forwardingTurnedOn)
	}
	return wan, warnings, notes, nil
}

// sysctlFile is where forwardingTurnedOn tells the user to keep the
// setting: systemd-sysctl (and procps on other inits) reads /etc/sysctl.d
// at boot.
const sysctlFile = "/etc/sysctl.d/99-portfwd.conf"

// forwardingTurnedOn is the note of --enable-forwarding having changed the
// host: a write to /proc lasts until the next reboot only.
var forwardingTurnedOn = "turned IPv4 forwarding on (net.ipv4.ip_forward was 0, as --enable-forwarding allows); " +
	"this lasts until the router reboots: to keep it, run echo net.ipv4.ip_forward=1 > " + sysctlFile +
	" as root (or keep --enable-forwarding on every run)"

// errForwardingOff explains net.ipv4.ip_forward=0.
var errForwardingOff = errors.New("IPv4 forwarding is off (net.ipv4.ip_forward=0), so the router drops every forwarded packet, DNAT or not: " +
	"run portfwd apply --enable-forwarding, or sysctl -w net.ipv4.ip_forward=1 and, to keep it after a reboot, write net.ipv4.ip_forward=1 to " + sysctlFile)

// checkForwarding checks net.ipv4.ip_forward, turning it on when asked,
// and reports whether it did.
func checkForwarding(opts Options, sys system) (turnedOn bool, err error) {
	b, err := sys.readFile(ipForwardPath)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", ipForwardPath, err)
	}
	if strings.TrimSpace(string(b)) == "1" {
		return false, nil
	}
	if !opts.EnableForwarding {
		return false, errForwardingOff
	}
	if err := sys.writeFile(ipForwardPath, []byte("1\n")); err != nil {
		return false, fmt.Errorf("enabling IPv4 forwarding: %w", err)
	}
	return true, nil
}

// defaultRouteInterface is the interface of the IPv4 default route: the
// /proc/net/route line with destination and mask 00000000.
func defaultRouteInterface(sys system) (string, error) {
	b, err := sys.readFile(routePath)
	if err != nil {
		return "", fmt.Errorf("finding the WAN interface: reading %s: %w", routePath, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 8 && f[1] == "00000000" && f[7] == "00000000" {
			return f[0], nil
		}
	}
	return "", errors.New("finding the WAN interface: no IPv4 default route; name the router's uplink with gateway.wan_interface or --wan-interface (ip -br link lists them)")
}

var flavourRE = regexp.MustCompile(`\((nf_tables|legacy)\)`)

// flavour reads "nf_tables" or "legacy" from `<cmd> --version`
// ("iptables v1.8.9 (nf_tables)") of cmd, iptables or ip6tables; versions
// before 1.8 print no mode and are legacy.
func (sys system) flavour(cmd string) string {
	out, err := sys.version(cmd)
	if err != nil {
		return ""
	}
	if m := flavourRE.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	if strings.HasPrefix(strings.TrimSpace(out), cmd+" v") {
		return "legacy"
	}
	return ""
}

// multiBinary names the xtables multi-binaries, which run as the tool
// their argv[0] names, iptables-restore among them: xtables-nft-multi and
// xtables-legacy-multi (iptables 1.8), xtables-multi and iptables-multi
// before.
var multiBinary = regexp.MustCompile(`^(xtables|iptables)(-nft|-legacy)?-multi$`)

// restoreBinary is the <cmd>-restore to run beside the cmd (iptables or
// ip6tables) in PATH, or "" when there is none it can tell. When cmd is an
// xtables multi-binary, that binary: run as <cmd>-restore, it writes the
// flavour (nf_tables or legacy) the cmd calls write, where a -restore
// looked up in PATH may be the other flavour's. Else the <cmd>-restore in
// the directory cmd is in (distributions switch the two together; a
// wrapper script can bring its own).
func restoreBinary(sys system, cmd string) string {
	p, err := sys.lookPath(cmd)
	if err != nil {
		return ""
	}
	if real, err := sys.realPath(p); err == nil && multiBinary.MatchString(filepath.Base(real)) {
		return real
	}
	sibling, err := sys.lookPath(filepath.Join(filepath.Dir(p), cmd+"-restore"))
	if err != nil {
		return ""
	}
	return sibling
}
