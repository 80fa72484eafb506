package forward

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Printable is s made safe to print on a terminal or in a table: every
// control character (a tab, a line break, an escape sequence) and every
// invalid UTF-8 byte is written as a Go escape (\t, \n, \x1b, \u2028), so
// text that came from the network — a router's mapping description, a
// game server's name, an error a device worded — can neither forge a row
// of a table nor move the cursor. Printable text is returned unchanged.
func Printable(s string) string {
	if isPrintable(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsPrint(r) || r == ' ':
			b.WriteRune(r)
		default:
			q := fmt.Sprintf("%+q", string(r)) // "\t", "\x1b", "\u2028"
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

// PrintableLines is Printable but for line breaks, which are kept: for
// messages of several lines, such as a config's problems.
func PrintableLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = Printable(l)
	}
	return strings.Join(lines, "\n")
}

func isPrintable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !(unicode.IsPrint(r) || r == ' ') {
			return false
		}
	}
	return true
}
