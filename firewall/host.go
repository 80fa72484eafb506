package firewall

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
)

// Files the preconditions read.
const (
	ipForwardPath = "/proc/sys/net/ipv4/ip_forward"
	routePath     = "/proc/net/route"
)

// system is what the backend asks of the host outside iptables, so tests
// can check every precondition.
type system struct {
	geteuid        func() int
	lookPath       func(string) (string, error)
	readFile       func(string) ([]byte, error)
	writeFile      func(string, []byte) error
	interfaceAddrs func(name string) ([]net.Addr, error)
	version        func() (string, error) // `iptables --version`
}

func hostSystem() system {
	return system{
		geteuid:  os.Geteuid,
		lookPath: exec.LookPath,
		readFile: os.ReadFile,
		writeFile: func(name string, b []byte) error {
			return os.WriteFile(name, b, 0o644)
		},
		interfaceAddrs: func(name string) ([]net.Addr, error) {
			ifi, err := net.InterfaceByName(name)
			if err != nil {
				return nil, err
			}
			return ifi.Addrs()
		},
		version: func() (string, error) {
			out, err := exec.Command("iptables", "--version").Output()
			return string(out), err
		},
	}
}

// checkHost checks what New needs and returns the WAN interface. Each
// error says what to do.
func checkHost(opts Options, sys system) (string, error) {
	if sys.geteuid() != 0 {
		return "", errors.New("the iptables backend changes the firewall: run portfwd as root (or with CAP_NET_ADMIN) on the router")
	}
	if _, err := sys.lookPath("iptables"); err != nil {
		return "", errors.New("no iptables binary in PATH: install the iptables package (apt install iptables)")
	}
	if err := checkForwarding(opts, sys); err != nil {
		return "", err
	}
	wan := opts.WANInterface
	if wan == "" {
		var err error
		if wan, err = defaultRouteInterface(sys); err != nil {
			return "", err
		}
	}
	if _, err := sys.interfaceAddrs(wan); err != nil {
		return "", fmt.Errorf("WAN interface %s: %w; name the router's uplink interface (ip -br link)", wan, err)
	}
	return wan, nil
}

// checkForwarding checks net.ipv4.ip_forward, turning it on when asked:
// with it off the kernel drops every forwarded packet, DNAT or not.
func checkForwarding(opts Options, sys system) error {
	b, err := sys.readFile(ipForwardPath)
	if err != nil {
		return fmt.Errorf("reading %s: %w", ipForwardPath, err)
	}
	if strings.TrimSpace(string(b)) == "1" {
		return nil
	}
	if !opts.EnableForwarding {
		return errors.New("IPv4 forwarding is off (net.ipv4.ip_forward=0), so the router drops forwarded packets: " +
			"run sysctl -w net.ipv4.ip_forward=1 and set it in /etc/sysctl.d/ to keep it, or let portfwd enable it")
	}
	if err := sys.writeFile(ipForwardPath, []byte("1\n")); err != nil {
		return fmt.Errorf("enabling IPv4 forwarding: %w", err)
	}
	return nil
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
	return "", errors.New("finding the WAN interface: no IPv4 default route; name the router's uplink interface")
}

var flavourRE = regexp.MustCompile(`\((nf_tables|legacy)\)`)

// flavour reads "nf_tables" or "legacy" from `iptables --version`
// ("iptables v1.8.9 (nf_tables)"); versions before 1.8 print no mode and
// are legacy.
func (sys system) flavour() string {
	out, err := sys.version()
	if err != nil {
		return ""
	}
	if m := flavourRE.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	if strings.HasPrefix(strings.TrimSpace(out), "iptables v") {
		return "legacy"
	}
	return ""
}
