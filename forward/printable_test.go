package forward_test

import (
	"testing"

	"github.com/portfwd/portfwd/forward"
)

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"Minecraft (UPnP)": "Minecraft (UPnP)",
		"Grüße, 世界":        "Grüße, 世界",
		"x\x1by":           `x\x1by`,
		"game\ntcp\t22":    `game\ntcp\t22`,
		"a\x00b\x01c\rd":   `a\x00b\x01c\rd`,
		"bad \xff utf8":    `bad \xff utf8`,
		"line\u2028sep":    `line\u2028sep`,
		"\x1b[2J\x1b[Hboo": `\x1b[2J\x1b[Hboo`,
	} {
		if got := forward.Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
	if got := forward.PrintableLines("a.yaml:1: x\nb\x1b"); got != "a.yaml:1: x\n"+`b\x1b` {
		t.Errorf("PrintableLines = %q", got)
	}
}
