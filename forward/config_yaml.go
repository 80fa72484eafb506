package forward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// loader collects every problem of one file while walking its YAML nodes.
// It walks yaml.Node rather than decoding into structs: nodes carry line
// numbers, and a struct decode stops at the first type error instead of
// reporting them all.
type loader struct {
	file  string
	opts  LoadOptions
	errs  []Diagnostic
	warns []Diagnostic

	// What the load has cost, and what it left out (config_limits.go).
	fatal []Diagnostic // the limit that stopped the load
	keys  int          // key: value pairs read, merged ones each time
	spent bool         // maxKeys were read: read no more
	// expanding is the outermost merge key (<<) or alias being read
	// through: where to blame a file that expands too far.
	expanding *blame
	seen      map[Diagnostic]bool
	omitted   int // errors past maxProblemsKept
}

func newLoader(file string, opts LoadOptions) *loader {
	return &loader{file: file, opts: opts}
}

// The keys each level of the file may hold.
var (
	topKeys         = []string{"name", "gateway", "probe_server", "rules"}
	gatewayKeys     = []string{"backend", "address", "lease", "wan_interface", "hairpin"}
	probeServerKeys = []string{"url", "token"}
	ruleKeys        = []string{"name", "service", "protocol", "external_port", "internal_port", "internal_host", "family", "probe", "description", "hairpin"}
)

// maxMergeDepth bounds "<<" merge keys that merge maps that merge maps. YAML
// lets an anchor refer to a node that contains it, so without a bound a
// crafted file would recurse forever.
const maxMergeDepth = 8

func (l *loader) errorf(line int, key, format string, args ...any) {
	if l.full() {
		l.omitted++
		return
	}
	l.keep(Diagnostic{File: l.file, Line: line, Key: key, Message: fmt.Sprintf(format, args...)})
}

func (l *loader) warnf(line int, key, format string, args ...any) {
	l.warns = append(l.warns, Diagnostic{File: l.file, Line: line, Key: key, Message: fmt.Sprintf(format, args...)})
}

// load walks the whole file. The config it returns is only meaningful when
// no errors were recorded.
func (l *loader) load(ctx context.Context, data []byte) *Config {
	if l.tooBig(data) {
		return nil
	}
	root := l.parse(data)
	if root == nil {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		l.errorf(root.Line, "", "want a mapping with gateway: and rules: keys, got %s", kindName(root))
		return nil
	}
	f := l.fields(root, "", topKeys)
	if l.spent {
		return nil
	}
	cfg := &Config{File: l.file, Name: l.configName(f["name"]), Gateway: l.gateway(f["gateway"]), ProbeServer: l.probeServer(f["probe_server"])}
	cfg.Rules = l.rules(ctx, f["rules"], root.Line)
	return cfg
}

// parse reads exactly one YAML document and returns its root node, or nil
// after recording why there is none.
func (l *loader) parse(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		l.errorf(1, "", "the file is empty: no rules: key (write rules: [] to remove every forward portfwd owns)")
		return nil
	}
	if err != nil {
		l.syntaxError(err, data)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		l.errorf(max(extra.Line, 1), "", "the file holds more than one YAML document (---); portfwd reads one")
		return nil
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		l.errorf(max(doc.Line, 1), "", "the file is empty: no rules: key (write rules: [] to remove every forward portfwd owns)")
		return nil
	}
	return doc.Content[0]
}

// yamlLine finds the line in yaml's "yaml: line 5: did not find expected key".
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlAnchor finds the name in "yaml: unknown anchor 'base' referenced".
var yamlAnchor = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)

// parserProblems are the errors of yaml.v3's parser (parserc.go), as opposed
// to its scanner. For these, yaml.v3 v3.0.1 reports a 0-based line (the
// scanner's are 1-based), so the line is one too low.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// syntaxError records a YAML syntax error at the line yaml reported,
// corrected where yaml.v3 is off by one.
func (l *loader) syntaxError(err error, data []byte) {
	msg := err.Error()
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if parserProblems[msg] {
			line = min(line+1, bytes.Count(data, []byte("\n"))+1)
		}
	} else if m := yamlAnchor.FindStringSubmatch(msg); m != nil {
		line = lineOf(data, "*"+m[1])
		msg = strings.TrimPrefix(msg, "yaml: ")
	} else if l.encodingErrors(data) {
		return
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	l.errorf(line, "", "invalid YAML: %s", msg)
}

// lineOf is the 1-based line where text first occurs in data, or 0.
func lineOf(data []byte, text string) int {
	i := bytes.Index(data, []byte(text))
	if i < 0 {
		return 0
	}
	return bytes.Count(data[:i], []byte("\n")) + 1
}

// fields checks that n is a mapping holding only known keys, each once, and
// returns the value node of each key present (aliases resolved). Keys merged
// in with "<<" fill in what n does not set itself, as YAML 1.1 specifies.
func (l *loader) fields(n *yaml.Node, path string, known []string) map[string]*yaml.Node {
	out := make(map[string]*yaml.Node)
	l.collect(n, path, known, out, 0)
	return out
}

func (l *loader) collect(n *yaml.Node, path string, known []string, out map[string]*yaml.Node, depth int) {
	lines := make(map[string]int)
	var merges []int // where the merge keys (<<) are in n.Content
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		if !l.spend(blame{k.Line, joinKey(path, k.Value)}) {
			return
		}
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merges = append(merges, i)
			continue
		}
		l.collectKey(k, v, path, known, out, lines)
	}
	for _, i := range merges {
		outer := l.expanding
		if outer == nil {
			l.expanding = &blame{n.Content[i].Line, joinKey(path, n.Content[i].Value)}
		}
		l.merge(deref(n.Content[i+1]), path, known, out, depth)
		l.expanding = outer
	}
}

// collectKey records one key: value pair of a mapping.
func (l *loader) collectKey(k, v *yaml.Node, path string, known []string, out map[string]*yaml.Node, lines map[string]int) {
	if k.Kind != yaml.ScalarNode {
		l.errorf(k.Line, path, "keys must be plain names, got %s", kindName(k))
		return
	}
	key := joinKey(path, k.Value)
	if first, dup := lines[k.Value]; dup {
		l.errorf(k.Line, key, "key set twice; first set on line %d", first)
		return
	}
	lines[k.Value] = k.Line
	if !slices.Contains(known, k.Value) {
		hint := ""
		if !l.full() {
			hint = unknownHint(k.Value, known)
		}
		l.errorf(k.Line, key, "unknown key %q%s", k.Value, hint)
		return
	}
	out[k.Value] = v
}

// merge applies a "<<" value: a mapping, or a list of mappings, whose keys
// n did not set itself.
func (l *loader) merge(m *yaml.Node, path string, known []string, out map[string]*yaml.Node, depth int) {
	if depth >= maxMergeDepth {
		l.errorf(m.Line, path, "merge keys (<<) nest deeper than %d levels", maxMergeDepth)
		return
	}
	sources := []*yaml.Node{m}
	if m.Kind == yaml.SequenceNode {
		sources = m.Content
	}
	for _, s := range sources {
		s = deref(s)
		if !l.spend(blame{s.Line, path}) {
			return
		}
		if s.Kind != yaml.MappingNode {
			l.errorf(s.Line, path, "a merge key (<<) takes a mapping or a list of mappings, got %s", kindName(s))
			continue
		}
		merged := make(map[string]*yaml.Node)
		l.collect(s, path, known, merged, depth+1)
		for k, v := range merged {
			if _, set := out[k]; !set {
				out[k] = v
			}
		}
	}
}

// scalar returns the text of a scalar value. A missing key or a null value
// is ("", false) without an error; a list or a mapping is an error.
func (l *loader) scalar(n *yaml.Node, key string) (string, bool) {
	if isNull(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		l.errorf(n.Line, key, "want a single value, got %s", kindName(n))
		return "", false
	}
	if l.tooLong(n, key) {
		return "", false
	}
	return n.Value, true
}

// boolean reads a true or false value; a missing key is (false, false).
func (l *loader) boolean(n *yaml.Node, key string) (value, ok bool) {
	s, ok := l.scalar(n, key)
	if !ok {
		return false, false
	}
	b, err := strconv.ParseBool(s)
	if err != nil || n.Tag != "!!bool" {
		l.errorf(n.Line, key, "want true or false, got %q", s)
		return false, false
	}
	return b, true
}

// deref follows aliases (*name) to the node they stand for.
func deref(n *yaml.Node) *yaml.Node {
	for range maxMergeDepth {
		if n == nil || n.Kind != yaml.AliasNode || n.Alias == nil {
			break
		}
		n = n.Alias
	}
	return n
}

// isNull reports a missing value: no node, "key:" with nothing after it, or
// an explicit null or ~.
func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || n.Kind == 0 || n.Kind == yaml.AliasNode ||
		n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// kindName names a node's kind for messages: "a list", "a mapping".
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		return quoteShort(n.Value)
	}
	return "nothing"
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// unknownHint suggests the keys a typo was probably meant to be, or lists the
// keys allowed here when none is close.
func unknownHint(word string, known []string) string {
	if s := suggest(word, known); s != "" {
		return " (did you mean " + s + "?)"
	}
	return " (known keys: " + strings.Join(known, ", ") + ")"
}
