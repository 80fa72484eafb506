package main

import "testing"

func TestDebianVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3":                  "1.2.3",
		"v1.2.3-4-gabc1234-dirty": "1.2.3-4-gabc1234-dirty",
		"0.9.0":                   "0.9.0",
		"c404f8f-dirty":           "0~gitc404f8f-dirty",
		"42aaf5b":                 "0~git42aaf5b",
		"dev-b16a21c01234":        "0~gitdev-b16a21c01234",
	} {
		if got := DebianVersion(in); got != want {
			t.Errorf("DebianVersion(%q) = %q, want %q", in, got, want)
		}
	}
}
