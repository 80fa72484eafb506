package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"time"
)

// Interface names. They are fixed because each lives in its own namespace.
const (
	RouterWANIface = "wan0" // router side of the wan link; miniupnpd's ext_ifname
	RouterLANIface = "lan0" // router side of the lan link; miniupnpd's listening_ip
	HostIface      = "eth0" // the single interface of the wan and lan hosts
)

// HTTPPort is where miniupnpd serves its description and SOAP control URLs.
const HTTPPort = 5000

// readyTimeout bounds Up and Reboot when the caller's context has no deadline;
// miniupnpd answers within tens of milliseconds when all is well.
const readyTimeout = 15 * time.Second

// Host names one of the lab's machines (namespaces).
type Host int

const (
	WAN    Host = iota // "the internet"
	Router             // NAT + miniupnpd
	LAN                // the user's PC
)

func (h Host) String() string {
	switch h {
	case WAN:
		return "wan"
	case Router:
		return "router"
	case LAN:
		return "lan"
	}
	return fmt.Sprintf("Host(%d)", int(h))
}

// ParseHost is the inverse of Host.String.
func ParseHost(s string) (Host, error) {
	for _, h := range []Host{WAN, Router, LAN} {
		if h.String() == s {
			return h, nil
		}
	}
	return 0, fmt.Errorf("unknown lab host %q (want wan, router or lan)", s)
}

// Options selects the lab variant.
type Options struct {
	// IGDv1 sets force_igd_desc_v1=yes: miniupnpd then advertises
	// InternetGatewayDevice:1 / WANIPConnection:1 instead of IGD:2 only.
	IGDv1 bool
	// CGNAT puts the WAN side in 100.64.0.0/10. miniupnpd refuses every
	// mapping then (UPnP 501, NAT-PMP failure), like a router behind
	// carrier-grade NAT.
	CGNAT bool
	// SecureMode is secure_mode=; nil means yes, as on real routers.
	SecureMode *bool
	// NoUPnP sets enable_upnp=no: the router speaks NAT-PMP and PCP only.
	NoUPnP bool
	// NoNATPMP sets enable_natpmp=no, which switches off PCP too: the
	// router speaks UPnP only.
	NoNATPMP bool
	// PCPThirdParty sets pcp_allow_thirdparty=yes: PCP may map ports for
	// other LAN hosts (the THIRD_PARTY option).
	PCPThirdParty bool
	// IPv6On leaves miniupnpd's IPv6 support on, as Debian and OpenWrt
	// ship it: no ipv6_disable, and ext_ifname6 names the WAN interface.
	// The lab has no IPv6 addresses, so miniupnpd switches its IPv6 HTTP
	// side off again at start ("no HTTP IPv6 address"); its pinhole scan
	// on every AddPortMapping runs either way (measured: the same log
	// lines per add with ipv6_disable=yes). A slow router is this with
	// LogLineCost.
	IPv6On bool
	// IPv6 gives every lab machine a global IPv6 address (LAB.md "IPv6 in
	// the lab": the wan link 2a02:8000:0:1::/64, the lan link
	// 2a02:8000:77:1::/64, the lan side routed as 2a02:8000:77::/48), turns
	// on IPv6 forwarding on the router and miniupnpd's IPv6 side (it
	// implies IPv6On): miniupnpd then serves WANIPv6FirewallControl and its
	// HTTP on RootDescURL6, PCP on RouterLAN6. The router forwards to the
	// LAN host over IPv6 only what the LAN opened or a pinhole allows;
	// with Iptables, its ip6tables ruleset does the same (ip6tablesTmpl).
	IPv6 bool
	// LogLineCost, when set, makes every line miniupnpd logs cost this
	// long: its log reaches the file through a one-page pipe drained at
	// one line per LogLineCost, so miniupnpd waits on it as on a slow
	// console. Since miniupnpd logs lines per mapping in its table on
	// every AddPortMapping, each add then slows down as the table grows:
	// SlowRouterLogLine is LAB.md's slow router. Not with Detached.
	LogLineCost time.Duration
	// Iptables makes the router a plain Linux box with an iptables
	// firewall of its own and no miniupnpd: portfwd runs on it with the
	// iptables backend (Router). Its ruleset holds rules portfwd must leave
	// alone (IptablesRuleset).
	Iptables bool
	// IptablesLegacy loads the Iptables router's rulesets into the legacy
	// flavour's tables (iptables-legacy-restore) instead of nf_tables', for
	// proving portfwd end to end with iptables-legacy.
	IptablesLegacy bool
	// Detached starts miniupnpd in its own session so it outlives this
	// process (the portfwd-lab command). Otherwise it is killed when this
	// process dies, so a crashed test leaves no daemon behind. A detached
	// lab belongs to this process's parent: Sweep keeps it while the shell
	// that ran portfwd-lab up is open.
	Detached bool
	// Log, if set, receives one line per setup step.
	Log io.Writer
}

// ipv6On is whether miniupnpd's IPv6 side is on: asked for, or needed by
// the IPv6 lab.
func (o Options) ipv6On() bool { return o.IPv6On || o.IPv6 }

func (o Options) secureMode() bool { return o.SecureMode == nil || *o.SecureMode }

// owner is the process the lab belongs to (see Sweep): this one, or for a
// Detached lab, which outlives it, its parent (the shell that ran
// portfwd-lab up).
func (o Options) owner() int {
	if o.Detached {
		return os.Getppid()
	}
	return os.Getpid()
}

// Lab is one running home network. Its exported fields are read-only.
type Lab struct {
	Name                         string     // "pfl-<6 hex>", prefix of the namespace names
	WANHost, RouterWAN           netip.Addr // the wan link
	RouterLAN, LANHost, LANHost2 netip.Addr // the lan link; LANHost2 is a second address of the LAN host
	RootDescURL                  string     // http://192.168.77.1:5000/rootDesc.xml
	// The IPv6 addresses, with Options.IPv6 only (else zero): the wan host,
	// the router's wan and lan sides, the LAN host, and the description
	// URL on the router's lan IPv6 address, which a pinhole request must
	// use (secure mode: the requester must be the internal client).
	WANHost6, RouterWAN6, RouterLAN6, LANHost6 netip.Addr
	RootDescURL6                               string // http://[2a02:8000:77:1::1]:5000/rootDesc.xml
	Dir                                        string // config, lease file, pid file, miniupnpd.log

	opts   Options
	daemon *daemon // the running miniupnpd, nil when stopped
	// releaseSyslog gives up this lab's share of the /dev/log sink.
	releaseSyslog func()
}

// addresses fills in the LAB.md addresses for the chosen variant.
func (l *Lab) addresses() {
	l.WANHost = netip.MustParseAddr("50.60.70.80")
	l.RouterWAN = netip.MustParseAddr("50.60.70.1")
	if l.opts.CGNAT {
		l.WANHost = netip.MustParseAddr("100.64.0.80")
		l.RouterWAN = netip.MustParseAddr("100.64.0.1")
	}
	l.RouterLAN = netip.MustParseAddr("192.168.77.1")
	l.LANHost = netip.MustParseAddr("192.168.77.10")
	l.LANHost2 = netip.MustParseAddr("192.168.77.11")
	l.RootDescURL = fmt.Sprintf("http://%s:%d/rootDesc.xml", l.RouterLAN, HTTPPort)
	if l.opts.IPv6 {
		l.WANHost6 = netip.MustParseAddr("2a02:8000:0:1::80")
		l.RouterWAN6 = netip.MustParseAddr("2a02:8000:0:1::1")
		l.RouterLAN6 = netip.MustParseAddr("2a02:8000:77:1::1")
		l.LANHost6 = netip.MustParseAddr("2a02:8000:77:1::10")
		l.RootDescURL6 = fmt.Sprintf("http://[%s]:%d/rootDesc.xml", l.RouterLAN6, HTTPPort)
	}
}

// Prefix lengths of the IPv6 links, and the prefix the router's lan side
// is routed as from the wan (a delegated /48).
const (
	linkBits6 = 64
	lanRoute6 = "2a02:8000:77::/48"
)

// wanBits is the prefix length of the wan link: /10 is the whole shared
// address space of RFC 6598 in the CGNAT variant.
func (l *Lab) wanBits() int {
	if l.opts.CGNAT {
		return 10
	}
	return 24
}

// lanBits is the prefix length of the lan link.
const lanBits = 24

// Namespace returns the network namespace name of h.
func (l *Lab) Namespace(h Host) string { return l.Name + "-" + h.String() }

// Up builds a lab and returns once miniupnpd answers HTTP from the LAN. On
// failure everything built so far is torn down.
func Up(ctx context.Context, opts Options) (*Lab, error) {
	name, err := randomName()
	if err != nil {
		return nil, err
	}
	l := &Lab{Name: name, opts: opts}
	l.addresses()
	if !opts.Detached {
		l.releaseSyslog = acquireSyslog()
	}
	if l.Dir, err = os.MkdirTemp("", name+"-"); err != nil {
		return nil, fmt.Errorf("creating lab dir: %w", err)
	}
	if err := writeOwner(l.Dir, opts.owner()); err != nil {
		return nil, errors.Join(err, l.Down())
	}
	if err := l.build(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("starting lab %s: %w", name, err), l.Down())
	}
	return l, nil
}

func (l *Lab) build(ctx context.Context) error {
	l.logf("lab %s: creating namespaces", l.Name)
	if err := l.createNetwork(ctx); err != nil {
		return err
	}
	if l.opts.Iptables {
		l.logf("lab %s: loading the router's own iptables ruleset", l.Name)
		return l.configureIptablesRouter(ctx)
	}
	l.logf("lab %s: writing nftables ruleset and miniupnpd config in %s", l.Name, l.Dir)
	if err := l.configureRouter(ctx); err != nil {
		return err
	}
	return l.startMiniupnpd(ctx)
}

// Down kills miniupnpd and everything else running in the lab's namespaces,
// deletes the namespaces and removes Dir. It is idempotent.
func (l *Lab) Down() error {
	var errs []error
	if err := l.stopMiniupnpd(); err != nil {
		errs = append(errs, err)
	}
	if l.releaseSyslog != nil {
		l.releaseSyslog()
		l.releaseSyslog = nil
	}
	for _, h := range []Host{LAN, Router, WAN} {
		if err := l.deleteNamespace(h); err != nil {
			errs = append(errs, err)
		}
	}
	if l.Dir != "" {
		if err := os.RemoveAll(l.Dir); err != nil {
			errs = append(errs, fmt.Errorf("removing lab dir: %w", err))
		}
	}
	l.logf("lab %s: down", l.Name)
	return errors.Join(errs...)
}

// Reboot is a gateway reboot as LAB.md defines it: stop miniupnpd, flush its
// chains, delete the lease file, start it again. Mappings are gone and the
// NAT-PMP epoch restarts. The log file is kept, so counts keep growing.
func (l *Lab) Reboot(ctx context.Context) error {
	l.logf("lab %s: rebooting router", l.Name)
	if err := l.stopMiniupnpd(); err != nil {
		return fmt.Errorf("rebooting: %w", err)
	}
	if err := l.flushChains(ctx); err != nil {
		return fmt.Errorf("rebooting: %w", err)
	}
	for _, f := range []string{leaseFile, lease6File} {
		if err := os.Remove(l.path(f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rebooting: %w", err)
		}
	}
	return l.startMiniupnpd(ctx)
}

// Command returns `ip netns exec <namespace of h> name args...`.
func (l *Lab) Command(h Host, name string, args ...string) *exec.Cmd {
	return exec.Command(tool("ip"), append([]string{"netns", "exec", l.Namespace(h), name}, args...)...)
}

// CommandContext is Command bound to ctx.
func (l *Lab) CommandContext(ctx context.Context, h Host, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, tool("ip"), append([]string{"netns", "exec", l.Namespace(h), name}, args...)...)
}

// Mappings is `upnpc -u RootDescURL -l` run on the LAN host, for debugging.
func (l *Lab) Mappings(ctx context.Context) (string, error) {
	out, err := l.CommandContext(ctx, LAN, "upnpc", "-u", l.RootDescURL, "-l").CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("listing mappings with upnpc: %w", err)
	}
	return string(out), nil
}

func (l *Lab) logf(format string, args ...any) {
	if l.opts.Log != nil {
		fmt.Fprintf(l.opts.Log, format+"\n", args...)
	}
}

func randomName() (string, error) {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("naming lab: %w", err)
	}
	return "pfl-" + hex.EncodeToString(b), nil
}

// withDefaultTimeout bounds waits when the caller gave no deadline, so a
// broken miniupnpd fails the test instead of hanging it.
func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, readyTimeout)
}
