package lab

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const minecraft = "25565"

// upnpc runs upnpc on the LAN host against the lab's root description,
// skipping SSDP discovery.
func upnpc(t *testing.T, l *Lab, args ...string) (string, error) {
	t.Helper()
	out, err := l.Command(LAN, "upnpc", append([]string{"-u", l.RootDescURL}, args...)...).CombinedOutput()
	return string(out), err
}

// listenLAN serves a greeting line per connection on the LAN host.
func listenLAN(t *testing.T, l *Lab, port string) {
	t.Helper()
	p, _ := strconv.Atoi(port)
	l.Serve(t, LAN, "tcp", p, "hello from lan")
}

// dialFromWAN connects from the WAN host and returns the first line read.
func dialFromWAN(l *Lab, addr netip.Addr, port string) (string, error) {
	return l.ExchangeFrom(WAN, "tcp", net.JoinHostPort(addr.String(), port), "")
}

func TestLabMappingReachesLANHost(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Options{})
	listenLAN(t, l, minecraft)
	if _, err := dialFromWAN(l, l.RouterWAN, minecraft); err == nil {
		t.Fatal("WAN reached the LAN host before any mapping: the router forwards unsolicited traffic")
	}
	if n := l.AddPortMappingCount(); n != 0 {
		t.Fatalf("AddPortMappingCount before any mapping = %d, want 0", n)
	}
	if out, err := upnpc(t, l, "-a", l.LANHost.String(), minecraft, minecraft, "TCP"); err != nil {
		t.Fatalf("upnpc -a: %v\n%s", err, out)
	}
	if n := l.AddPortMappingCount(); n != 1 {
		t.Errorf("AddPortMappingCount after one upnpc -a = %d, want 1", n)
	}
	line, err := dialFromWAN(l, l.RouterWAN, minecraft)
	if err != nil {
		t.Fatalf("dialing the mapping from the WAN: %v", err)
	}
	// Inbound traffic is only DNATed: the LAN host sees the real peer.
	if want := "hello from lan (you are " + l.WANHost.String() + ":"; !strings.HasPrefix(line, want) {
		t.Errorf("greeting = %q, want prefix %q", line, want)
	}
}

func TestLabIGDv2ByDefault(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Options{})
	desc, err := l.RootDesc(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(desc, "urn:schemas-upnp-org:service:WANIPConnection:2") {
		t.Errorf("root description lacks WANIPConnection:2:\n%s", desc)
	}
}

func TestLabIGDv1AdvertisesWANIPConnection1(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Options{IGDv1: true})
	desc, err := l.RootDesc(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"urn:schemas-upnp-org:device:InternetGatewayDevice:1", "urn:schemas-upnp-org:service:WANIPConnection:1"} {
		if !strings.Contains(desc, want) {
			t.Errorf("root description lacks %s:\n%s", want, desc)
		}
	}
	if out, err := upnpc(t, l, "-a", l.LANHost.String(), minecraft, minecraft, "TCP"); err != nil {
		t.Fatalf("upnpc -a against IGD:1: %v\n%s", err, out)
	}
	if n := l.AddPortMappingCount(); n != 1 {
		t.Errorf("AddPortMappingCount = %d, want 1 (WANIPConnection:1 actions count too)", n)
	}
}

func TestLabRebootClearsMappings(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Options{})
	if out, err := upnpc(t, l, "-a", l.LANHost.String(), minecraft, minecraft, "TCP"); err != nil {
		t.Fatalf("upnpc -a: %v\n%s", err, out)
	}
	if err := l.Reboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	out, err := l.Mappings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, minecraft+"->") {
		t.Errorf("mapping survived the reboot:\n%s", out)
	}
	rules, _ := l.Command(Router, "nft", "list", "chain", "inet", "filter", "prerouting_miniupnpd").CombinedOutput()
	if strings.Contains(string(rules), "dnat") {
		t.Errorf("DNAT rule survived the reboot:\n%s", rules)
	}
	listenLAN(t, l, minecraft)
	if _, err := dialFromWAN(l, l.RouterWAN, minecraft); err == nil {
		t.Error("WAN still reaches the LAN host after the reboot")
	}
}

func TestLabCGNATRefusesMappings(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Options{CGNAT: true})
	if !strings.HasPrefix(l.RouterWAN.String(), "100.64.") {
		t.Fatalf("RouterWAN = %s, want an address in 100.64.0.0/10", l.RouterWAN)
	}
	out, err := upnpc(t, l, "-a", l.LANHost.String(), minecraft, minecraft, "TCP")
	if err == nil {
		t.Fatalf("upnpc -a succeeded behind CGNAT:\n%s", out)
	}
	if !strings.Contains(l.MiniupnpdLog(), "Port forwarding is impossible") {
		t.Error("miniupnpd did not log that port forwarding is impossible")
	}
}

func TestLabSecureModeRefusesOtherHosts(t *testing.T) {
	t.Parallel()
	insecure := false
	for _, tc := range []struct {
		name   string
		secure *bool
		wantOK bool
	}{{"secure", nil, false}, {"insecure", &insecure, true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := ForTest(t, Options{SecureMode: tc.secure})
			out, err := upnpc(t, l, "-a", l.LANHost2.String(), minecraft, minecraft, "TCP")
			if (err == nil) != tc.wantOK {
				t.Errorf("mapping for %s from %s: err = %v, want success %v\n%s", l.LANHost2, l.LANHost, err, tc.wantOK, out)
			}
		})
	}
}

func TestLabNATPMP(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Options{})
	out, err := l.Command(LAN, "natpmpc", "-g", l.RouterLAN.String(), "-a", "25566", "25566", "udp", "60").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Mapped public port 25566") {
		t.Fatalf("natpmpc -a: %v\n%s", err, out)
	}
}

// natpmpc maps one UDP port with miniupnpc's NAT-PMP client.
func natpmpc(l *Lab) (string, error) {
	out, err := l.Command(LAN, "natpmpc", "-g", l.RouterLAN.String(), "-a", "25567", "25567", "udp", "60").CombinedOutput()
	return string(out), err
}

func TestLabNoUPnPSpeaksNATPMPOnly(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Options{NoUPnP: true})
	if _, err := l.RootDesc(context.Background()); err == nil {
		t.Errorf("UPnP answered with enable_upnp=no")
	}
	if out, err := natpmpc(l); err != nil || !strings.Contains(out, "Mapped public port 25567") {
		t.Errorf("NAT-PMP with UPnP off: %v\n%s", err, out)
	}
}

func TestLabNoNATPMPSpeaksUPnPOnly(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Options{NoNATPMP: true})
	if out, err := natpmpc(l); err == nil && strings.Contains(out, "Mapped public port") {
		t.Errorf("NAT-PMP answered with enable_natpmp=no:\n%s", out)
	}
	if _, err := upnpc(t, l, "-a", l.LANHost.String(), minecraft, minecraft, "TCP"); err != nil {
		t.Errorf("UPnP with NAT-PMP off: %v", err)
	}
}

func TestLabSaveLoadDown(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Options{})
	path := filepath.Join(t.TempDir(), "env")
	if err := l.Save(path); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Name != l.Name || loaded.RouterWAN != l.RouterWAN || !loaded.Running() {
		t.Fatalf("loaded lab %+v does not match %+v or is not running", loaded, l)
	}
	if err := loaded.Down(); err != nil {
		t.Fatal(err)
	}
	if l.Running() || loaded.Running() {
		t.Error("lab still running after Down")
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err != nil || strings.Contains(string(out), l.Name) {
		t.Errorf("namespaces left after Down (%v):\n%s", err, out)
	}
	if err := loaded.Down(); err != nil {
		t.Errorf("second Down: %v", err)
	}
}

// TestLabSweepKeepsOwnedLabs runs the sweep over two labs: one of this
// running test, which stays, and one whose owner is gone, which goes. The
// sweep is limited to these two: other tests' labs on this machine are
// not this test's to touch.
func TestLabSweepKeepsOwnedLabs(t *testing.T) {
	mine := ForTest(t, Options{Iptables: true})
	orphan, err := Up(context.Background(), Options{Iptables: true, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = orphan.Down() })
	// A pid above Linux's pid_max (2^22): a process that cannot run.
	if err := os.WriteFile(filepath.Join(orphan.Dir, ownerFile), []byte("4194305 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := sweep(testWriter{t}, func(name string) bool { return name == mine.Name || name == orphan.Name }); err != nil {
		t.Fatal(err)
	}
	if !mine.Running() {
		t.Errorf("sweep removed lab %s, whose owner (this test) runs", mine.Name)
	}
	if _, err := os.Stat(filepath.Join(netnsDir, orphan.Namespace(Router))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lab %s, whose owner is gone, still has its router namespace (%v)", orphan.Name, err)
	}
	if _, err := os.Stat(orphan.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lab %s, whose owner is gone, still has its dir (%v)", orphan.Name, err)
	}
}
