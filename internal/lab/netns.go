package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns add` bind-mounts named namespaces.
const netnsDir = "/run/netns"

// createNetwork builds the three namespaces, the two veth links and the
// addresses and routes of LAB.md.
func (l *Lab) createNetwork(ctx context.Context) error {
	for _, h := range []Host{WAN, Router, LAN} {
		if err := l.ip(ctx, "netns", "add", l.Namespace(h)); err != nil {
			return err
		}
	}
	// Creating each end directly inside its namespace means the veths never
	// appear in the root namespace, so they cannot clash with another lab's.
	if err := l.veth(ctx, WAN, HostIface, Router, RouterWANIface); err != nil {
		return err
	}
	if err := l.veth(ctx, Router, RouterLANIface, LAN, HostIface); err != nil {
		return err
	}
	return l.configureHosts(ctx)
}

func (l *Lab) veth(ctx context.Context, a Host, aName string, b Host, bName string) error {
	return l.ip(ctx, "link", "add", aName, "netns", l.Namespace(a),
		"type", "veth", "peer", "name", bName, "netns", l.Namespace(b))
}

// configureHosts assigns addresses, brings links up and adds routes.
func (l *Lab) configureHosts(ctx context.Context) error {
	steps := []hostStep{
		{WAN, addrAdd(l.WANHost, l.wanBits(), HostIface)},
		{Router, addrAdd(l.RouterWAN, l.wanBits(), RouterWANIface)},
		{Router, addrAdd(l.RouterLAN, lanBits, RouterLANIface)},
		{LAN, addrAdd(l.LANHost, lanBits, HostIface)},
		{LAN, addrAdd(l.LANHost2, lanBits, HostIface)},
		{WAN, linkUp("lo")}, {WAN, linkUp(HostIface)},
		{Router, linkUp("lo")}, {Router, linkUp(RouterWANIface)}, {Router, linkUp(RouterLANIface)},
		{LAN, linkUp("lo")}, {LAN, linkUp(HostIface)},
		{LAN, []string{"route", "add", "default", "via", l.RouterLAN.String()}},
		// Without this route the LAN host has no interface for SSDP
		// multicast and M-SEARCH never reaches miniupnpd (LAB.md).
		{LAN, []string{"route", "add", "239.255.255.250/32", "dev", HostIface}},
	}
	for _, s := range append(steps, l.ipv6Steps()...) {
		if err := l.ip(ctx, append([]string{"-n", l.Namespace(s.h)}, s.args...)...); err != nil {
			return err
		}
	}
	if l.opts.IPv6 {
		if err := l.sysctl(ctx, Router, "net.ipv6.conf.all.forwarding", "1"); err != nil {
			return err
		}
	}
	return l.sysctl(ctx, Router, "net.ipv4.ip_forward", "1")
}

// hostStep is one ip command run in a host's namespace.
type hostStep struct {
	h    Host
	args []string
}

// ipv6Steps are the IPv6 addresses and routes of LAB.md "IPv6 in the
// lab", none without Options.IPv6. nodad makes each address usable at
// once instead of tentative for a second or two.
func (l *Lab) ipv6Steps() []hostStep {
	if !l.opts.IPv6 {
		return nil
	}
	nodad := func(a netip.Addr, dev string) []string { return append(addrAdd(a, linkBits6, dev), "nodad") }
	return []hostStep{
		{WAN, nodad(l.WANHost6, HostIface)},
		{Router, nodad(l.RouterWAN6, RouterWANIface)},
		{Router, nodad(l.RouterLAN6, RouterLANIface)},
		{LAN, nodad(l.LANHost6, HostIface)},
		{LAN, []string{"-6", "route", "add", "default", "via", l.RouterLAN6.String()}},
		{WAN, []string{"-6", "route", "add", lanRoute6, "via", l.RouterWAN6.String()}},
	}
}

func addrAdd(a netip.Addr, bits int, dev string) []string {
	return []string{"addr", "add", netip.PrefixFrom(a, bits).String(), "dev", dev}
}

func linkUp(dev string) []string { return []string{"link", "set", dev, "up"} }

// sysctl writes key in h's namespace; /proc/sys/net is per namespace, so it
// is written from a thread switched into it.
func (l *Lab) sysctl(ctx context.Context, h Host, key, value string) error {
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	err := l.Do(h, func() error { return os.WriteFile(path, []byte(value), 0o644) })
	if err != nil {
		return fmt.Errorf("setting %s=%s in %s: %w", key, value, l.Namespace(h), err)
	}
	return nil
}

// deleteNamespace kills whatever still runs in h (a listener a test forgot,
// a second miniupnpd) and deletes it; a missing namespace is not an error.
func (l *Lab) deleteNamespace(h Host) error {
	ns := l.Namespace(h)
	if _, err := os.Stat(filepath.Join(netnsDir, ns)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	killAll(namespacePIDs(ns))
	out, err := exec.Command(tool("ip"), "netns", "delete", ns).CombinedOutput()
	if err != nil {
		return fmt.Errorf("deleting namespace %s: %w: %s", ns, err, bytes.TrimSpace(out))
	}
	return nil
}

func namespacePIDs(ns string) []int {
	out, _ := exec.Command(tool("ip"), "netns", "pids", ns).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killAll sends SIGTERM, then SIGKILL to whatever is still alive after 2 s.
func killAll(pids []int) {
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(2 * time.Second)
	for _, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// alive reports whether pid runs. A zombie counts as dead: when this process
// is not its parent, it may never be reaped (PID 1 in a container often does
// not reap).
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name, which may hold spaces.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || (stat[i+2] != 'Z' && stat[i+2] != 'X')
}

// Do runs fn on a locked OS thread switched into h's network namespace and
// switches back. Sockets fn opens stay in that namespace after Do returns,
// which is how a test listens on the LAN host and dials from the WAN host.
// fn must create its sockets itself: goroutines it starts run on other
// threads, in the root namespace.
func (l *Lab) Do(h Host, fn func() error) (err error) {
	target, err := os.Open(filepath.Join(netnsDir, l.Namespace(h)))
	if err != nil {
		return fmt.Errorf("opening namespace %s: %w", l.Namespace(h), err)
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("opening current namespace: %w", err)
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering namespace %s: %w", l.Namespace(h), err)
	}
	// Deferred so that a panic in fn switches back too.
	defer func() {
		if serr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); serr != nil {
			// Stay locked: when the goroutine ends, the runtime kills the
			// thread instead of reusing it in the wrong namespace.
			err = errors.Join(err, fmt.Errorf("returning from namespace %s: %w", l.Namespace(h), serr))
			return
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

// ip runs the ip tool in the root namespace; its output goes into the error.
func (l *Lab) ip(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, tool("ip"), args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
