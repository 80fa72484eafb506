package forward

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// A config must be UTF-8 text without control characters. yaml.v3's
// reader refuses anything else with no line ("yaml: invalid leading UTF-8
// octet", "yaml: control characters are not allowed"): it keeps only the
// byte offset (readerc.go, yaml_parser_set_reader_error). encodingErrors
// finds those bytes again, to report each line that holds one, with the
// key on that line.

// badByte is a byte, or a character, that YAML does not take.
type badByte struct {
	offset, size int
	line, column int // 1-based; the column counts characters
	what         string
}

// encodingErrors records a problem on each line holding a byte YAML does
// not take. It is false when it finds none (a file in UTF-16, which yaml
// reads too), so that the caller reports yaml's own message.
func (l *loader) encodingErrors(data []byte) bool {
	bad := badBytes(data)
	if len(bad) == 0 {
		return false
	}
	keys := keyLines(sanitize(data, bad))
	last := 0
	for _, b := range bad {
		if b.line == last {
			continue
		}
		last = b.line
		l.errorf(b.line, keyBefore(keys[b.line], b.column), "invalid YAML: %s", fmt.Sprintf(b.what, b.column))
	}
	return true
}

// badBytes lists, in order, what yaml.v3's reader refuses in a UTF-8 file
// (readerc.go, yaml_parser_update_buffer): bytes that are not UTF-8, and
// characters outside YAML's printable set (YAML 1.2 §5.1). A file that
// starts with a UTF-16 byte order mark is yaml's to read: none.
func badBytes(data []byte) []badByte {
	if bytes.HasPrefix(data, []byte{0xFE, 0xFF}) || bytes.HasPrefix(data, []byte{0xFF, 0xFE}) {
		return nil
	}
	var bad []badByte
	line, lineStart := 1, 0
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if what := refused(data[i], r, size); what != "" {
			bad = append(bad, badByte{offset: i, size: size, line: line, column: utf8.RuneCount(data[lineStart:i]) + 1, what: what})
		}
		if data[i] == '\n' {
			line, lineStart = line+1, i+1
		}
		i += size
	}
	return bad
}

// refused says why YAML does not take the character r, of size bytes,
// that starts with byte b, with a %d for its column; "" when it does.
func refused(b byte, r rune, size int) string {
	const control = " at column %d; YAML takes no control characters but tab and line breaks: remove it"
	switch {
	case r == utf8.RuneError && size == 1:
		return fmt.Sprintf("byte 0x%02x", b) + " at column %d is not UTF-8; save the file as UTF-8"
	case r == 0:
		return "a NUL byte" + control
	case r == 0x09, r == 0x0A, r == 0x0D, r >= 0x20 && r <= 0x7E, r == 0x85,
		r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000:
		return ""
	}
	return fmt.Sprintf("control character %U", r) + control
}

// sanitize is data with every refused byte replaced by a space, so that
// it parses and its keys can be found: a space inside a value or a
// comment keeps the structure, whatever was there.
func sanitize(data []byte, bad []badByte) []byte {
	clean := bytes.Clone(data)
	for _, b := range bad {
		for k := range b.size {
			clean[b.offset+k] = ' '
		}
	}
	return clean
}

// keyAt is a key, or a list item, and the column it starts at.
type keyAt struct {
	column int
	path   string
}

// keyLines lists, per line of data, the keys and list items that start on
// it, by column. Aliases are not followed. Nothing when data does not
// parse.
func keyLines(data []byte) map[int][]keyAt {
	var doc yaml.Node
	keys := make(map[int][]keyAt)
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		return keys
	}
	walkKeys(doc.Content[0], "", keys)
	return keys
}

// walkKeys adds the keys and items of n, at path, to keys, each before
// what it holds.
func walkKeys(n *yaml.Node, path string, keys map[int][]keyAt) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			p := joinKey(path, k.Value)
			keys[k.Line] = append(keys[k.Line], keyAt{k.Column, p})
			walkKeys(n.Content[i+1], p, keys)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			keys[item.Line] = append(keys[item.Line], keyAt{item.Column, p})
			walkKeys(item, p, keys)
		}
	}
}

// keyBefore is the key that starts last at or before column (the deepest
// of those that start there), or "".
func keyBefore(keys []keyAt, column int) string {
	best := keyAt{column: -1}
	for _, k := range keys {
		if k.column <= column && k.column >= best.column {
			best = k
		}
	}
	return best.path
}
