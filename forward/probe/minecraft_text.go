package probe

import (
	"strings"
	"unicode"
)

// maxChatDepth bounds how deep flattenChat follows nested components, so
// a hostile description cannot make it recurse without end.
const maxChatDepth = 32

// flattenChat returns the plain text of a Minecraft chat component
// (wiki.vg "Text formatting"/"Chat"): a string, an array of components,
// or an object whose "text" is followed by the components in "extra".
func flattenChat(v any, depth int) string {
	if depth > maxChatDepth {
		return ""
	}
	switch c := v.(type) {
	case string:
		return c
	case []any:
		var b strings.Builder
		for _, e := range c {
			b.WriteString(flattenChat(e, depth+1))
		}
		return b.String()
	case map[string]any:
		text, _ := c["text"].(string)
		return text + flattenChat(c["extra"], depth+1)
	}
	return ""
}

// plainText strips the § formatting codes (a § and the one character
// after it: colour, bold, reset, ...) and folds runs of whitespace,
// newlines included, to one space, so a MOTD fits one line of a table.
func plainText(s string) string {
	var b strings.Builder
	skip := false
	for _, r := range s {
		switch {
		case skip:
			skip = false
		case r == '§':
			skip = true
		case unicode.IsControl(r) && !unicode.IsSpace(r):
		default:
			b.WriteRune(r)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}
