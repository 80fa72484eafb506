package lab

import (
	"strings"
	"testing"
)

func TestMisplaced(t *testing.T) {
	for _, tt := range []struct {
		test string
		env  map[string]string
		want string // "" for no error
	}{
		{"TestLabFoo", nil, ""},
		{"TestLabFoo/sub/case", nil, ""},
		{"BenchmarkLabFoo", nil, ""},
		{"TestFoo", nil, "name it TestLab"},
		{"TestFooLab/sub", nil, "lab test TestFooLab: name it TestLab"},
		{"BenchmarkFoo", nil, "name it TestLab"},
		{"TestLabFoo", map[string]string{unitEnv: "1"}, "in the unit pass"},
		{"TestLabFoo", map[string]string{unitEnv: "0"}, ""},
		{"TestLabFoo", map[string]string{childEnv: "{}"}, "call lab.ChildOf first"},
	} {
		err := misplaced(tt.test, func(k string) string { return tt.env[k] })
		if !errMatches(err, tt.want) {
			t.Errorf("misplaced(%q, %v) = %v, want %q", tt.test, tt.env, err, tt.want)
		}
	}
}

// errMatches reports whether err is nil when want is "", else an error
// whose text holds want.
func errMatches(err error, want string) bool {
	if err == nil || want == "" {
		return err == nil && want == ""
	}
	return strings.Contains(err.Error(), want)
}
