package lab

import (
	"errors"
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

func TestGate(t *testing.T) {
	ok := func() error { return nil }
	missing := func() error { return errors.New("miniupnpd not found") }
	for _, tt := range []struct {
		name   string
		test   string
		short  bool
		env    map[string]string
		prereq func() error
		skip   string // "" for no skip
		err    string // "" for no error
	}{
		{name: "root, everything there: runs", test: "TestLabFoo", prereq: ok},
		{name: "-short skips even as root", test: "TestLabFoo", short: true, prereq: ok, skip: "-short"},
		{name: "-short skips with PORTFWD_LAB=1 too", test: "TestLabFoo", short: true, env: map[string]string{"PORTFWD_LAB": "1"}, prereq: ok, skip: "-short"},
		{name: "-short does not hide a misnamed lab test", test: "TestFoo", short: true, prereq: ok, err: "name it TestLab"},
		{name: "missing prerequisite skips", test: "TestLabFoo", prereq: missing, skip: "miniupnpd not found"},
		{name: "missing prerequisite fails with PORTFWD_LAB=1", test: "TestLabFoo", env: map[string]string{"PORTFWD_LAB": "1"}, prereq: missing, err: "miniupnpd not found"},
		{name: "missing prerequisite fails with CI=true", test: "TestLabFoo", env: map[string]string{"CI": "true"}, prereq: missing, err: "prerequisites missing"},
		{name: "the unit pass fails a lab test", test: "TestLabFoo", env: map[string]string{unitEnv: "1"}, prereq: ok, err: "in the unit pass"},
	} {
		skip, err := gate(tt.test, tt.short, func(k string) string { return tt.env[k] }, tt.prereq)
		if !errMatches(err, tt.err) || (tt.skip == "") != (skip == "") || !strings.Contains(skip, tt.skip) {
			t.Errorf("%s: gate = (%q, %v), want skip %q, error %q", tt.name, skip, err, tt.skip, tt.err)
		}
	}
}
