package forward

import "testing"

// TestLoadEncoding: bytes YAML does not take are reported with their line,
// column and key, one problem per line that holds any; yaml.v3 says only
// "invalid leading UTF-8 octet" or "control characters are not allowed".
func TestLoadEncoding(t *testing.T) {
	const control = "; YAML takes no control characters but tab and line breaks: remove it"
	tests := []struct {
		name string
		src  string
		want []want
	}{
		{"NUL in a value", "rules:\n  - name: a\x00\n", []want{{2, "rules[0].name", "invalid YAML: a NUL byte at column 12" + control}}},
		{"Latin-1 in a value", "rules:\n  - name: a\n    description: caf\xe9\n",
			[]want{{3, "rules[0].description", "invalid YAML: byte 0xe9 at column 21 is not UTF-8; save the file as UTF-8"}}},
		{"after a character of two bytes", "rules:\n  - name: a\n    description: é\xff\n",
			[]want{{3, "rules[0].description", "byte 0xff at column 19 is not UTF-8"}}},
		{"a control character", "rules:\n  - name: a\n    description: x\x01y\n", []want{{3, "rules[0].description", "control character U+0001 at column 19"}}},
		{"a C1 control character", "rules:\n  - description: \xc2\x80\n", []want{{2, "rules[0].description", "control character U+0080 at column 18"}}},
		{"in a comment", "rules: []\n# caf\xff\n", []want{{2, "", "byte 0xff at column 6 is not UTF-8"}}},
		{"in a flow mapping", "gateway: {backend: upnp, lease: 1\x00h}\nrules: []\n", []want{{1, "gateway.lease", "a NUL byte at column 34"}}},
		{"one problem a line", "rules:\n  - name: a\x00\x00\xff\n  - name: b\x01\n", []want{
			{2, "rules[0].name", "a NUL byte at column 12"},
			{3, "rules[1].name", "control character U+0001 at column 12"},
		}},
		{"a syntax error too", "rules:\n  - name: a\n    protocol: [tcp\n    description: \x00\n", []want{{4, "", "a NUL byte at column 18"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := load(t, tt.src)
			if err == nil {
				t.Fatal("loaded")
			}
			checkDiags(t, problems(t, err), tt.want)
		})
	}
}

// TestLoadEncodingAllowed: what yaml.v3 takes loads as before: a UTF-8
// byte order mark, tabs, CRLF line ends, characters beyond ASCII.
func TestLoadEncodingAllowed(t *testing.T) {
	src := "\ufeffrules:\r\n  - name: a\r\n    service: ssh\r\n    description: \"caf\u00e9 \u2603\tx\"\r\n"
	cfg, _, err := load(t, src)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Rules[0].Description; got != "caf\u00e9 \u2603\tx" {
		t.Errorf("description %q", got)
	}
}
