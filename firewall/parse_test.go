package firewall

import (
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/forward"
)

func TestParseNftablesOutput(t *testing.T) {
	b, err := os.ReadFile("testdata/nft-nat-S-PORTFWD-PREROUTING.txt")
	if err != nil {
		t.Fatal(err)
	}
	var got []forward.Mapping
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		r, err := parseRule(line)
		if err != nil {
			continue
		}
		if m, ok := r.mapping(); ok {
			got = append(got, m)
		}
	}
	host := netip.MustParseAddr
	want := []forward.Mapping{
		{Key: forward.Key{Protocol: forward.TCP, ExternalPort: 25565}, InternalHost: host("192.168.77.10"), InternalPort: 25565, Description: "portfwd:mc", Enabled: true},
		{Key: forward.Key{Protocol: forward.UDP, ExternalPort: 19132}, InternalHost: host("192.168.77.10"), InternalPort: 19132, Description: `portfwd:bedrock the "Bedrock" server`, Enabled: true},
		{Key: forward.Key{Protocol: forward.TCP, ExternalPort: 8080}, InternalHost: host("192.168.77.12"), InternalPort: 8080, Description: "portfwd:web", Enabled: true},
	}
	if !slices.Equal(got, want) {
		t.Errorf("parsed\n%+v\nwant\n%+v", got, want)
	}
	if got[1].Owner() != "bedrock" {
		t.Errorf("owner of the quoted comment = %q", got[1].Owner())
	}
}

func TestSplitArgs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{`-A X -j ACCEPT`, []string{"-A", "X", "-j", "ACCEPT"}},
		{`--comment "a b"  -j  X`, []string{"--comment", "a b", "-j", "X"}},
		{`--comment "say \"hi\" \\ ok"`, []string{"--comment", `say "hi" \ ok`}},
		{`--comment ""`, []string{"--comment", ""}},
	} {
		got, err := splitArgs(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("splitArgs(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := splitArgs(`--comment "open`); err == nil {
		t.Error("unterminated quote: no error")
	}
}

func TestQuoteRoundTrip(t *testing.T) {
	for _, s := range []string{"portfwd:mc", "portfwd:x a \"b\" \\c", "", "it's"} {
		got, err := splitArgs("--comment " + quoteArg(s))
		if err != nil || len(got) != 2 || got[1] != s {
			t.Errorf("round trip of %q: %q, %v", s, got, err)
		}
	}
}

func TestSpecsParseBack(t *testing.T) {
	m := forward.Mapping{Key: forward.Key{Protocol: forward.UDP, ExternalPort: 27015},
		InternalHost: netip.MustParseAddr("192.168.77.11"), InternalPort: 27016,
		Description: "portfwd:cs with spaces", Enabled: true}
	got, ok := rule{chain: chainDNAT, args: dnatSpec(m)}.mapping()
	if !ok || got != m {
		t.Errorf("DNAT spec reads back as %+v, %v; want %+v", got, ok, m)
	}
	k, ok := rule{chain: chainForward, args: acceptSpec(m)}.acceptKey()
	if !ok || k != m.Key {
		t.Errorf("ACCEPT spec key = %v, %v; want %v", k, ok, m.Key)
	}
	k, ok = rule{chain: chainSNAT, args: snatSpec(m, netip.MustParsePrefix("192.168.77.0/24"))}.snatKey()
	if !ok || k != m.Key {
		t.Errorf("MASQUERADE spec key = %v, %v; want %v", k, ok, m.Key)
	}
	if _, ok := (rule{chain: chainSNAT, args: acceptSpec(m)}).snatKey(); ok {
		t.Errorf("an ACCEPT rule read as a MASQUERADE one")
	}
}

func FuzzParseRule(f *testing.F) {
	b, _ := os.ReadFile("testdata/nft-nat-S-PORTFWD-PREROUTING.txt")
	for _, line := range strings.Split(string(b), "\n") {
		f.Add(line)
	}
	f.Add(`-A X --comment "unterminated`)
	f.Add(`-A X -p tcp --dport -j DNAT --to-destination`)
	f.Fuzz(func(t *testing.T, line string) {
		r, err := parseRule(line)
		if err != nil {
			return
		}
		if m, ok := r.mapping(); ok && (!m.InternalHost.Is4() || m.ExternalPort == 0 || m.InternalPort == 0) {
			t.Errorf("%q parsed to an invalid mapping %+v", line, m)
		}
		r.acceptKey()
		r.snatKey()
	})
}

// quoteArg is the inverse of splitArgs for one word.
func quoteArg(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"\\'") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}
