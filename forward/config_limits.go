package forward

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// What one load may cost. A config is read on every run and on every
// reload of a daemon, and YAML lets a small file stand for a huge one: a
// 60-byte file that merges (<<) a mapping into itself 8 times at each of
// 8 levels asks for 16.7 million merges, and took a load past 3 GB. Each
// bound is far above what a home's config needs; a file past one is
// refused at once, with the line and key where it went past.
//
// yaml.v3 (v3.0.1) does not bound this for portfwd: its alias-expansion
// limit ("document contains excessive aliasing") and its check for an
// anchor that contains itself are in its decoder, which fills Go values;
// a decode into a yaml.Node, as the loader does, only parses, and leaves
// every alias a pointer to its anchor for the loader to follow. What
// the parser itself bounds is nesting (10,000 levels).
const (
	// maxConfigBytes is the largest file read: 1,000 rules written out in
	// full, every key set, take under 300 kB. Parsing takes about 150 ms
	// and 27 MB of memory per MiB (a 40 MB file took 5.8 s and 1.1 GB).
	maxConfigBytes = 1 << 20
	// maxRules is the most rules a file may list. A rule is a forward the
	// router keeps and portfwd renews, and checks on every pass. Routers
	// that document a limit hold a few hundred (Actiontec's MI424WR: 256
	// UPnP mappings), and a home forwards a handful of services; a block
	// of ports is one rule with a range.
	maxRules = 1000
	// maxKeys is the most key: value pairs a load reads, counting every
	// key a merge key (<<) or an alias brings in each time it does. A rule
	// has at most 9 keys: 1,000 rules that all merge defaults which merge
	// defaults of their own read under 30,000.
	maxKeys = 50_000
	// maxValueBytes is the longest value read. None needs more: a name
	// is at most 40 bytes, a hostname 253, a URL or a token a few dozen.
	// Without it, a long value that 1,000 rules name through an alias
	// is quoted in 1,000 messages (a 1 MB file made 48 MB of them).
	maxValueBytes = 1024
	// maxProblemsShown is how many problems a ConfigError lists, first
	// line first; one more line says how many were left out.
	maxProblemsShown = 50
	// maxProblemsKept bounds the problems held while loading; past it
	// they are only counted.
	maxProblemsKept = 1000
)

// blame is the line and key path a problem is reported at.
type blame struct {
	line int
	key  string
}

// fatalf records a problem that stops the load: a limit was passed. It is
// listed first, before the problems found until then.
func (l *loader) fatalf(line int, key, format string, args ...any) {
	l.fatal = append(l.fatal, Diagnostic{File: l.file, Line: line, Key: key, Message: fmt.Sprintf(format, args...)})
}

// tooBig refuses data over maxConfigBytes, at the line the limit falls on.
func (l *loader) tooBig(data []byte) bool {
	if len(data) <= maxConfigBytes {
		return false
	}
	line := bytes.Count(data[:maxConfigBytes], []byte("\n")) + 1
	l.fatalf(line, "", "the file is over 1 MiB (%d bytes), far more than a config takes (%d rules written out in full take under 300 kB); portfwd does not read it: is it the right file?", maxConfigBytes, maxRules)
	return true
}

// tooManyRules refuses a rules: list of more than maxRules, at the first
// rule past the limit.
func (l *loader) tooManyRules(n *yaml.Node) bool {
	if len(n.Content) <= maxRules {
		return false
	}
	l.fatalf(n.Content[maxRules].Line, "rules", "%d rules, more than the %d portfwd takes: each is a forward the router keeps and portfwd renews on every pass, far more than a home router holds; forward a block of ports with one rule and a range (external_port: 2000-2099)", len(n.Content), maxRules)
	return true
}

// spend counts one key read at w, or merged in. It is false once the
// load has read maxKeys of them: then nothing more is read, and the key
// that went past is blamed, or, read through a merge or an alias, the
// merge key or alias it started from.
func (l *loader) spend(w blame) bool {
	if l.spent {
		return false
	}
	if l.keys++; l.keys <= maxKeys {
		return true
	}
	l.spent = true
	if l.expanding != nil {
		w = *l.expanding
	}
	l.fatalf(w.line, w.key, "the file expands to more than %d keys, counting every key a merge key (<<) or an alias brings in each time it does (a config of %d rules reads under 30000); portfwd stops reading it here", maxKeys, maxRules)
	return false
}

// full reports that maxProblemsKept errors are held: a problem found now
// is only counted, so spare the work of describing it (a suggestion for a
// misspelt key costs an edit distance to every known one).
func (l *loader) full() bool { return len(l.errs) >= maxProblemsKept }

// keep records the error d unless it was recorded before: merges can bring
// one mapping, and its mistakes, in many times over.
func (l *loader) keep(d Diagnostic) {
	if l.seen == nil {
		l.seen = make(map[Diagnostic]bool)
	}
	if !l.seen[d] {
		l.seen[d] = true
		l.errs = append(l.errs, d)
	}
}

// problems are the errors to report: what stopped the load, then the rest
// by line, at most maxProblemsShown of them and a last line saying how
// many more there were; and how many problems there are in all.
func (l *loader) problems() ([]Diagnostic, int) {
	sortDiagnostics(l.errs)
	all := append(slices.Clip(l.fatal), l.errs...)
	omitted := l.omitted + max(0, len(all)-maxProblemsShown)
	if omitted == 0 {
		return all, len(all)
	}
	all = all[:min(len(all), maxProblemsShown)]
	total := len(all) + omitted
	return append(all, Diagnostic{File: l.file, Message: fmt.Sprintf("… and %d more problems not shown", omitted)}), total
}

// sortDiagnostics orders by line, so output reads top to bottom like the file.
func sortDiagnostics(ds []Diagnostic) {
	slices.SortStableFunc(ds, func(a, b Diagnostic) int { return cmp.Compare(a.Line, b.Line) })
}

// tooLong refuses a scalar value over maxValueBytes, without quoting it.
func (l *loader) tooLong(n *yaml.Node, key string) bool {
	if len(n.Value) <= maxValueBytes {
		return false
	}
	l.errorf(n.Line, key, "the value is %d bytes long, more than the %d any value of a config takes", len(n.Value), maxValueBytes)
	return true
}

// quoteShort quotes s for a message, cut after 64 bytes (on a rune
// boundary) with "…" after the quotes.
func quoteShort(s string) string {
	if len(s) <= 64 {
		return strconv.Quote(s)
	}
	cut := 64
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}
