package main

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/probe"
)

func TestOneOffRule(t *testing.T) {
	tests := []struct {
		arg, name, probe string
		first, last      uint16
		ok               bool
	}{
		{"minecraft-java", "minecraft-java", "minecraft-java", 25565, 25565, true},
		{"valheim", "valheim", "a2s", 2456, 2457, true},
		{"udp/19132", "udp-19132", "udp", 19132, 19132, true},
		{"TCP/22", "tcp-22", "tcp", 22, 22, true},
		{"tcp/0", "", "", 0, 0, false},
		{"tcp/70000", "", "", 0, 0, false},
		{"portfwd.yaml", "", "", 0, 0, false},
	}
	for _, tt := range tests {
		r, ok := oneOffRule(tt.arg)
		if ok != tt.ok || (ok && (r.Name != tt.name || string(r.Probe) != tt.probe || r.External.First != tt.first || r.External.Last != tt.last || r.InternalHost != "self")) {
			t.Errorf("oneOffRule(%q) = %+v, %v", tt.arg, r, ok)
		}
	}
}

func TestViaURLs(t *testing.T) {
	tests := []struct {
		via       []string
		url, url6 string
		err       string
	}{
		{[]string{"https://vps.example:8443"}, "https://vps.example:8443", "", ""},
		{[]string{"http://[2001:db8::8]:8443"}, "http://[2001:db8::8]:8443", "", ""},
		{[]string{"http://[2001:db8::8]:8443", "http://192.0.2.8:8443"}, "http://192.0.2.8:8443", "http://[2001:db8::8]:8443", ""},
		{[]string{"http://192.0.2.8:8443", "https://vps.example:8443/v6"}, "", "", "give the probe server's URL once, or twice"},
		{[]string{"http://[2001:db8::8]:8443", "http://[2001:db8::9]:8443"}, "", "", "an IPv4 address (or a name) and an IPv6 address"},
		{[]string{"a", "b", "c"}, "", "", "--via"},
		{[]string{"vps.example:8443"}, "", "", "want http://host:port"},
	}
	for _, tt := range tests {
		url, url6, err := viaURLs(tt.via)
		if url != tt.url || url6 != tt.url6 || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("viaURLs(%q) = %q, %q, %v; want %q, %q, %q", tt.via, url, url6, err, tt.url, tt.url6, tt.err)
		}
	}
}

// TestNotCheckedNamesTheFamily: a probe server that answered over IPv4
// but could not be asked over IPv6 is "the check over IPv6 could not
// run", not "nothing was checked".
func TestNotCheckedNamesTheFamily(t *testing.T) {
	v4 := probe.Report{Target: probe.Target{External: forward.Key{Protocol: forward.TCP, ExternalPort: 25565}}}
	v6 := probe.Report{Target: probe.Target{External: forward.Key{Protocol: forward.TCP, ExternalPort: 25565, Family: forward.IPv6}},
		VantageErr: errors.New("the probe server at http://192.0.2.8:8443 cannot be reached over IPv6")}
	if err := notChecked([]probe.Report{v4, v6}); exitCodeOf(err) != exitNotChecked || !strings.HasPrefix(err.Error(), "the check over IPv6 could not run: the probe server") {
		t.Errorf("dual: %v (exit %d)", err, exitCodeOf(err))
	}
	if err := notChecked([]probe.Report{v6}); exitCodeOf(err) != exitNotChecked || !strings.HasPrefix(err.Error(), "nothing was checked from outside: ") {
		t.Errorf("IPv6 only: %v (exit %d)", err, exitCodeOf(err))
	}
	if err := notChecked([]probe.Report{v4}); err != nil {
		t.Errorf("all asked: %v", err)
	}
}

// TestReportViewPerFamily: each report says its family, and an IPv6 one
// where friends connect; an IPv6 target without an address has none.
func TestReportViewPerFamily(t *testing.T) {
	addr := netip.MustParseAddrPort("[2a02:8000:77:1::10]:25565")
	r := probe.Report{Target: probe.Target{Rule: "mc", External: forward.Key{Protocol: forward.TCP, ExternalPort: 25565, Family: forward.IPv6}, Internal: addr},
		Verdict: probe.Reachable, Address: addr}
	noAddr := r
	noAddr.Internal, noAddr.Address = netip.AddrPortFrom(netip.Addr{}, 25565), netip.AddrPort{}
	views := viewReports([]probe.Report{r, noAddr})
	if v := views[0]; v.Family != "ipv6" || v.Mapping != "tcp6/25565" || v.Address != addr.String() {
		t.Errorf("view %+v", v)
	}
	if v := views[1]; v.Internal != "" || v.Address != "" {
		t.Errorf("no address: %+v", v)
	}
	if d := detail(r); !strings.Contains(d, "over IPv6 at [2a02:8000:77:1::10]:25565") {
		t.Errorf("detail %q does not say where friends connect", d)
	}
}
