package probe

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/forward"
)

var lan = netip.MustParseAddr("192.168.1.10")

// bound is a Binding on addr owned by java, pid 4242.
func bound(addr string) Binding {
	return Binding{
		Protocol: forward.TCP,
		Local:    netip.MustParseAddrPort(addr),
		PID:      4242,
		Command:  "/usr/bin/java -jar server.jar",
		Name:     "java",
	}
}

func TestReachable(t *testing.T) {
	v6lan := netip.MustParseAddr("2001:db8::10")
	tests := []struct {
		local string
		lan   netip.Addr
		want  bool
	}{
		{"0.0.0.0:25565", lan, true},
		{"[::]:25565", lan, true}, // dual-stack by default
		{"192.168.1.10:25565", lan, true},
		{"[::ffff:192.168.1.10]:25565", lan, true},
		{"[::ffff:0.0.0.0]:25565", lan, true},
		{"127.0.0.1:25565", lan, false},
		{"127.0.1.1:25565", lan, false}, // Debian's hostname address
		{"[::1]:25565", lan, false},
		{"[::ffff:127.0.0.1]:25565", lan, false},
		{"10.8.0.2:25565", lan, false},
		{"192.168.1.11:25565", lan, false},
		{"0.0.0.0:25565", netip.Addr{}, true},
		{"192.168.1.10:25565", netip.Addr{}, false},
		{"127.0.0.1:25565", netip.Addr{}, false},
		{"0.0.0.0:25565", v6lan, false}, // an IPv4 socket takes no IPv6
		{"[::]:25565", v6lan, true},
		{"[2001:db8::10]:25565", v6lan, true},
		{"192.168.1.10:25565", netip.MustParseAddr("::ffff:192.168.1.10"), true},
	}
	for _, tt := range tests {
		if got := bound(tt.local).Reachable(tt.lan); got != tt.want {
			t.Errorf("Binding on %s .Reachable(%v) = %v, want %v", tt.local, tt.lan, got, tt.want)
		}
	}
}

func TestDescribeLocal(t *testing.T) {
	lan6 := netip.MustParseAddr("2001:db8::10")
	unknown := Binding{Protocol: forward.TCP, Local: netip.MustParseAddrPort("127.0.0.1:25565")}
	noName := bound("0.0.0.0:25565")
	noName.Name = ""
	noCmd := bound("0.0.0.0:25565")
	noCmd.Command = ""
	tests := []struct {
		name string
		lan  netip.Addr
		bs   []Binding
		ok   bool
		msg  string
	}{
		{"nothing", lan, nil, false,
			"nothing is bound to tcp/25565 on this machine; start the server"},
		{"loopback", lan, []Binding{bound("127.0.0.1:25565")}, false,
			"tcp/25565 is bound to 127.0.0.1 only, by java (pid 4242): the router cannot reach it; make the server listen on 0.0.0.0 or 192.168.1.10"},
		{"loopback both families", lan, []Binding{bound("127.0.0.1:25565"), bound("[::1]:25565")}, false,
			"tcp/25565 is bound to 127.0.0.1 and ::1 only, by java (pid 4242): the router cannot reach it; make the server listen on 0.0.0.0 or 192.168.1.10"},
		{"loopback, owner unseen", lan, []Binding{unknown}, false,
			"tcp/25565 is bound to 127.0.0.1 only, by a process portfwd cannot see (run it as root to name it): the router cannot reach it; make the server listen on 0.0.0.0 or 192.168.1.10"},
		{"loopback, lan unknown", netip.Addr{}, []Binding{bound("[::ffff:127.0.0.1]:25565")}, false,
			"tcp/25565 is bound to 127.0.0.1 only, by java (pid 4242): the router cannot reach it; make the server listen on 0.0.0.0"},
		{"wildcard", lan, []Binding{bound("0.0.0.0:25565")}, true,
			"tcp/25565 is served by java (pid 4242, /usr/bin/java -jar server.jar)"},
		{"v6 wildcard", lan, []Binding{bound("[::]:25565")}, true,
			"tcp/25565 is served by java (pid 4242, /usr/bin/java -jar server.jar)"},
		{"lan address", lan, []Binding{bound("127.0.0.1:25565"), bound("192.168.1.10:25565")}, true,
			"tcp/25565 is served by java (pid 4242, /usr/bin/java -jar server.jar)"},
		{"served, no name", lan, []Binding{noName}, true,
			"tcp/25565 is served by pid 4242 (/usr/bin/java -jar server.jar)"},
		{"served, no command", lan, []Binding{noCmd}, true,
			"tcp/25565 is served by java (pid 4242)"},
		{"other address", lan, []Binding{bound("10.8.0.2:25565")}, false,
			"tcp/25565 is bound to 10.8.0.2 only, by java (pid 4242), not to 192.168.1.10, the LAN address the router forwards to: the router cannot reach it; make the server listen on 0.0.0.0 or 192.168.1.10"},
		{"other and loopback", lan, []Binding{bound("127.0.0.1:25565"), bound("10.8.0.2:25565"), unknown}, false,
			"tcp/25565 is bound to 127.0.0.1 and 10.8.0.2 only, by java (pid 4242) and a process portfwd cannot see (run it as root to name it), not to 192.168.1.10, the LAN address the router forwards to: the router cannot reach it; make the server listen on 0.0.0.0 or 192.168.1.10"},
		{"IPv6: 0.0.0.0 only", lan6, []Binding{bound("0.0.0.0:25565")}, false,
			"tcp/25565 is bound to 0.0.0.0 only, by java (pid 4242): an IPv4 socket takes no IPv6, so nothing arrives at [2001:db8::10]:25565; make the server listen on :: (every IPv4 and IPv6 address) or 2001:db8::10"},
		{"IPv6: the IPv4 LAN address only", lan6, []Binding{bound("192.168.1.10:25565")}, false,
			"tcp/25565 is bound to 192.168.1.10 only, by java (pid 4242): an IPv4 socket takes no IPv6, so nothing arrives at [2001:db8::10]:25565; make the server listen on :: (every IPv4 and IPv6 address) or 2001:db8::10"},
		{"IPv6: another IPv6 address", lan6, []Binding{bound("[2001:db8::99]:25565")}, false,
			"tcp/25565 is bound to 2001:db8::99 only, by java (pid 4242), not to 2001:db8::10, the address the router's pinhole opens: nothing from outside reaches it; make the server listen on :: (every IPv4 and IPv6 address) or 2001:db8::10"},
		{"IPv6: dual-stack", lan6, []Binding{bound("[::]:25565")}, true,
			"tcp/25565 is served by java (pid 4242, /usr/bin/java -jar server.jar)"},
		{"specific, lan unknown", netip.Addr{}, []Binding{bound("192.168.1.10:25565")}, false,
			"tcp/25565 is bound to 192.168.1.10 only, by java (pid 4242): the router reaches it only if it forwards to that address; make the server listen on 0.0.0.0"},
	}
	for _, tt := range tests {
		r := DescribeLocal(forward.TCP, 25565, tt.lan, tt.bs)
		// The table reads "what is wrong; what to do": Message and Fix.
		got := r.Message
		if r.Fix != "" {
			got += "; " + r.Fix
		}
		if r.OK != tt.ok || got != tt.msg || strings.Contains(r.Message, r.Fix) != (r.Fix == "") {
			t.Errorf("%s:\n got %v %q (fix %q)\nwant %v %q", tt.name, r.OK, r.Message, r.Fix, tt.ok, tt.msg)
		}
		if len(r.Bindings) != len(tt.bs) {
			t.Errorf("%s: report carries %d bindings, want %d", tt.name, len(r.Bindings), len(tt.bs))
		}
	}
}

func TestJoinAnd(t *testing.T) {
	tests := map[string][]string{"": nil, "a": {"a"}, "a and b": {"a", "b"}, "a, b and c": {"a", "b", "c"}}
	for want, items := range tests {
		if got := joinAnd(items); got != want {
			t.Errorf("joinAnd(%q) = %q, want %q", items, got, want)
		}
	}
}
