package upnp

import (
	"bytes"
	"encoding/xml"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/portfwd/portfwd/forward"
)

func TestLenientXML(t *testing.T) {
	tests := map[string]string{
		"x\x1by":                       "x\u241by", // raw ESC: its control picture ␛
		"a\x01b\x00c":                  "a\u2401b\u2400c",
		"x&#27;y":                      "x\u241by", // decimal reference
		"x&#x1B;y&#x1b;&#0000000027;":  "x\u241by\u241b\u241b",
		"caf\xe9":                      "caf\ufffd", // Latin-1 é: invalid UTF-8
		"&#xFFFE;&#xD800;&#x110000;":   "\ufffd\ufffd\ufffd",
		"&#99999999999999999999;":      "\ufffd",
		"tab\tnl\ncr\r&#9;&#10;&#233;": "tab\tnl\ncr\r&#9;&#10;&#233;", // allowed: kept byte for byte
		"&amp;#27; &# &#; &#x; &#27":   "&amp;#27; &# &#; &#x; &#27",   // no reference: left to the decoder
		"<a>é \ufffd 😀</a>":            "<a>é \ufffd 😀</a>",
	}
	for in, want := range tests {
		if got := string(lenientXML([]byte(in))); got != want {
			t.Errorf("lenientXML(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestListForeignControlChars: another device's mapping whose description
// holds a control character or invalid UTF-8 (upnpc -e "$(printf
// 'x\033y')") no longer stops List: the captured miniupnpd 2.3.1 listing
// and GetGenericPortMappingEntry answers are read, the description made
// printable, and every other mapping listed.
func TestListForeignControlChars(t *testing.T) {
	descs := []string{"x\x1by", "a\x01b", "caf\xe9", "p&#27;q", "&#x1;"} // sent raw, as miniupnpd does
	want := []string{"x\u241by", "a\u2401b", "caf\ufffd", "p\u241bq", "\u2401"}
	for _, desc := range []string{"igd1-rootdesc.xml", "igd2-rootdesc.xml"} {
		t.Run(desc, func(t *testing.T) {
			f := newFakeIGD(t, desc)
			for i, d := range descs {
				f.entries = append(f.entries, fakeEntry{proto: "UDP", ext: 9005 + i, port: 9005 + i, client: "192.168.77.10", desc: d, enabled: true})
			}
			f.entries = append(f.entries, fakeEntry{proto: "TCP", ext: 25565, port: 25565, client: "127.0.0.1", desc: "portfwd:mc", enabled: true})
			got, err := newTestIGD(t, f).List(testCtx(t))
			if err != nil {
				t.Fatalf("List: %v (actions %v)", err, f.actions)
			}
			if generic := f.count("GetGenericPortMappingEntry") > 0; generic != (desc == "igd1-rootdesc.xml") {
				t.Errorf("actions %v: want GetListOfPortMappings on IGD:2 and no fallback", f.actions)
			}
			checkDescriptions(t, got, append(slices.Clone(want), "portfwd:mc"))
		})
	}
	t.Run("captured listing", func(t *testing.T) {
		f := newFakeIGD(t, "igd2-rootdesc.xml")
		f.listing = "listing-miniupnpd-control-chars.xml"
		got, err := newTestIGD(t, f).listingPage(testCtx(t), forward.UDP, 1, 65535)
		if err != nil {
			t.Fatal(err)
		}
		checkDescriptions(t, got, []string{"caf\ufffd", "a\u2401b", "x\u241by"})
	})
	t.Run("captured entry", func(t *testing.T) {
		// The fake answers GetGenericPortMappingEntry byte for byte as
		// miniupnpd 2.3.1 did in the lab.
		f := newFakeIGD(t, "igd2-rootdesc.xml")
		f.entries = []fakeEntry{{proto: "UDP", ext: 9005, port: 9005, client: "192.168.77.10", desc: "x\x1by", enabled: true, lease: 604796}}
		captured := testdata(t, "generic-miniupnpd-control-char.xml")
		args := f.entries[0].args(true)
		if !bytes.Contains(captured, []byte(args)) {
			t.Fatalf("the fake's answer %q is not in the capture", args)
		}
		got, err := newTestIGD(t, f).listGeneric(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		checkDescriptions(t, got, []string{"x\u241by"})
	})
}

// checkDescriptions checks the descriptions of ms, in any order.
func checkDescriptions(t *testing.T, ms []forward.Mapping, want []string) {
	t.Helper()
	var got []string
	for _, m := range ms {
		got = append(got, m.Description)
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("descriptions %q, want %q", got, want)
	}
}

// FuzzLenientXML: whatever a gateway sends, the lenient text is valid
// UTF-8 holding only characters XML allows, raw or referenced (encoding/xml
// finds no illegal character in it), clean text is kept as it is, and a
// second pass changes nothing.
func FuzzLenientXML(f *testing.F) {
	f.Add(testdata(f, "listing-miniupnpd-control-chars.xml"))
	f.Add(testdata(f, "generic-miniupnpd-control-char.xml"))
	f.Add([]byte("<a>x&#27;y&#x1B;\x00caf\xe9&#xFFFE;</a>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out := lenientXML(b)
		if !utf8.Valid(out) {
			t.Fatalf("lenientXML(%q) = %q: invalid UTF-8", b, out)
		}
		if !needsLenience(b) && !bytes.Equal(out, b) {
			t.Fatalf("clean %q changed to %q", b, out)
		}
		if again := lenientXML(out); !bytes.Equal(again, out) {
			t.Fatalf("second pass changed %q to %q", out, again)
		}
		text := []byte("<a>" + string(bytes.ReplaceAll(bytes.ReplaceAll(out, []byte("<"), nil), []byte("]]>"), nil)) + "</a>")
		dec := xml.NewDecoder(bytes.NewReader(text))
		dec.Strict = false
		for {
			_, err := dec.Token()
			if err != nil {
				if se, ok := err.(*xml.SyntaxError); ok && (strings.Contains(se.Msg, "illegal character") || strings.Contains(se.Msg, "invalid UTF-8")) {
					t.Fatalf("%q: %v", text, err)
				}
				return
			}
		}
	})
}
