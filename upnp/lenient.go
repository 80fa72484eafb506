package upnp

import (
	"strconv"
	"unicode/utf8"
)

// lenientXML is b with every character XML 1.0 forbids (§2.2, production
// Char) replaced by a printable stand-in, whether it is sent raw or as a
// character reference (&#27; &#x1B;), and every invalid UTF-8 byte too.
// Go's encoding/xml refuses a whole document for one such character
// ("illegal character code U+001B", "invalid UTF-8"), with no way to skip
// it. Quirk: miniupnpd 2.3.1 stores a mapping's description as any client
// sent it and answers it raw, in GetGenericPortMappingEntry and in
// GetListOfPortMappings alike (captured in
// testdata/listing-miniupnpd-control-chars.xml), so one LAN device's
// `upnpc -e "$(printf 'x\033y')"` made every listing fail. Everything XML
// allows is kept byte for byte.
func lenientXML(b []byte) []byte {
	if !needsLenience(b) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for i := 0; i < len(b); {
		if r, n, ok := charRef(b[i:]); ok {
			if isXMLChar(r) {
				out = append(out, b[i:i+n]...)
			} else {
				out = utf8.AppendRune(out, standIn(r))
			}
			i += n
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			out = utf8.AppendRune(out, utf8.RuneError)
		case !isXMLChar(r):
			out = utf8.AppendRune(out, standIn(r))
		default:
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	return out
}

// needsLenience reports whether lenientXML would change b: the common
// answer, clean, is then passed on without a copy.
func needsLenience(b []byte) bool {
	for i := 0; i < len(b); {
		if r, _, ok := charRef(b[i:]); ok && !isXMLChar(r) {
			return true
		}
		r, size := utf8.DecodeRune(b[i:])
		if (r == utf8.RuneError && size == 1) || !isXMLChar(r) {
			return true
		}
		i += size
	}
	return false
}

// charRef reads a character reference at the start of b, as encoding/xml
// does: "&#" decimal digits ";" or "&#x" hex digits ";" (XML 1.0 §4.1,
// production CharRef), leading zeros and all. r is -1 for a reference past
// Unicode's range; ok is false when b does not start with one.
func charRef(b []byte) (r rune, n int, ok bool) {
	if len(b) < 4 || b[0] != '&' || b[1] != '#' {
		return 0, 0, false
	}
	start, base := 2, 10
	if b[2] == 'x' {
		start, base = 3, 16
	}
	end := start
	for end < len(b) && isDigit(b[end], base) {
		end++
	}
	if end == start || end >= len(b) || b[end] != ';' {
		return 0, 0, false
	}
	v, err := strconv.ParseUint(string(b[start:end]), base, 32)
	if err != nil || v > utf8.MaxRune {
		return -1, end + 1, true
	}
	return rune(v), end + 1, true
}

// isDigit reports whether c is a digit in base 10 or 16.
func isDigit(c byte, base int) bool {
	return '0' <= c && c <= '9' || base == 16 && ('a' <= c && c <= 'f' || 'A' <= c && c <= 'F')
}

// isXMLChar is XML 1.0's Char production (§2.2), as encoding/xml checks it.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// standIn is what replaces a forbidden character: its Unicode control
// picture for a C0 control (ESC becomes ␛, U+241B), so the description
// still says what was there, else the replacement character U+FFFD.
func standIn(r rune) rune {
	if r >= 0 && r < 0x20 {
		return 0x2400 + r
	}
	return utf8.RuneError
}
