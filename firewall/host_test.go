package firewall

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckHost(t *testing.T) {
	route := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"lan0\t004DA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"wan0\t00000000\t0171007B\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
	files := func(fwd string) func(string) ([]byte, error) {
		return func(name string) ([]byte, error) {
			if name == routePath {
				return []byte(route), nil
			}
			return []byte(fwd), nil
		}
	}
	for _, tc := range []struct {
		name    string
		opts    Options
		change  func(*system)
		wantErr string
		wantWAN string
	}{
		{name: "default route", wantWAN: "wan0"},
		{name: "named", opts: Options{WANInterface: "wan0"}, wantWAN: "wan0"},
		{name: "not root", change: func(s *system) { s.geteuid = func() int { return 1000 } }, wantErr: "run portfwd as root"},
		{name: "no iptables", change: func(s *system) {
			s.lookPath = func(string) (string, error) { return "", errors.New("not found") }
		}, wantErr: "install the iptables package"},
		{name: "forwarding off", change: func(s *system) { s.readFile = files("0\n") }, wantErr: "sysctl -w net.ipv4.ip_forward=1"},
		{name: "forwarding enabled", opts: Options{EnableForwarding: true}, change: func(s *system) { s.readFile = files("0\n") }, wantWAN: "wan0"},
		{name: "forwarding off, inspecting", opts: Options{Inspect: true}, change: func(s *system) { s.readFile = files("0\n") }, wantWAN: "wan0"},
		{name: "no such WAN", opts: Options{WANInterface: "eth7"}, wantErr: "WAN interface eth7 not found; name the router's uplink with gateway.wan_interface or --wan-interface"},
		{name: "no default route", change: func(s *system) {
			s.readFile = func(name string) ([]byte, error) {
				if name == routePath {
					return []byte(strings.SplitAfterN(route, "\n", 3)[0]), nil
				}
				return []byte("1"), nil
			}
		}, wantErr: "no IPv4 default route"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := testSystem()
			sys.readFile = files("1\n")
			var wrote string
			sys.writeFile = func(name string, b []byte) error { wrote = name + "=" + string(b); return nil }
			if tc.change != nil {
				tc.change(&sys)
			}
			wan, warns, notes, err := checkHost(tc.opts, sys)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("err = %v; want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || wan != tc.wantWAN {
				t.Errorf("checkHost = %q, %v; want %q", wan, err, tc.wantWAN)
			}
			if tc.opts.Inspect && (len(warns) != 1 || !strings.Contains(warns[0], "--enable-forwarding")) {
				t.Errorf("inspecting with forwarding off: warnings %q", warns)
			}
			if tc.opts.EnableForwarding && wrote != ipForwardPath+"=1\n" {
				t.Errorf("EnableForwarding wrote %q", wrote)
			}
			// Turning forwarding on is said, with how to keep it after a
			// reboot; nothing is said when nothing was changed.
			if said := len(notes) == 1 && strings.Contains(notes[0], "turned IPv4 forwarding on") &&
				strings.Contains(notes[0], "reboot") && strings.Contains(notes[0], "/etc/sysctl.d/"); said != (wrote != "") {
				t.Errorf("wrote %q; notes %q", wrote, notes)
			}
		})
	}
}

func TestFlavour(t *testing.T) {
	for out, want := range map[string]string{
		"iptables v1.8.9 (nf_tables)\n": "nf_tables",
		"iptables v1.8.7 (legacy)\n":    "legacy",
		"iptables v1.6.1\n":             "legacy",
		"garbage":                       "",
	} {
		sys := testSystem()
		sys.version = func(string) (string, error) { return out, nil }
		if got := sys.flavour("iptables"); got != want {
			t.Errorf("flavour of %q = %q, want %q", out, got, want)
		}
	}
}
