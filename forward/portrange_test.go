package forward

import (
	"strings"
	"testing"
)

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in      string
		want    PortRange
		wantErr string
	}{
		{"25565", PortRange{25565, 25565}, ""},
		{" 2456-2458 ", PortRange{2456, 2458}, ""},
		{"2456 - 2458", PortRange{2456, 2458}, ""},
		{"1", PortRange{1, 1}, ""},
		{"1-65535", PortRange{1, 65535}, ""},
		{"0", PortRange{}, "port 0 is out of range 1-65535"},
		{"65536", PortRange{}, "port 65536 is out of range 1-65535"},
		{"1-70000", PortRange{}, "port 70000 is out of range"},
		{"184467440737095516160", PortRange{}, "out of range"},
		{"2458-2456", PortRange{}, `reversed range "2458-2456": write 2456-2458`},
		{"", PortRange{}, `invalid port ""`},
		{"abc", PortRange{}, `invalid port "abc"`},
		{"-1", PortRange{}, `invalid port "-1"`},
		{"1-", PortRange{}, `invalid port "1-"`},
		{"+80", PortRange{}, `invalid port "+80"`},
		{"0x50", PortRange{}, `invalid port "0x50"`},
	}
	for _, tt := range tests {
		got, err := ParsePortRange(tt.in)
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("ParsePortRange(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParsePortRange(%q) error = %v, want %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestPortRange(t *testing.T) {
	r := PortRange{2456, 2458}
	if r.Len() != 3 || r.String() != "2456-2458" {
		t.Errorf("%v: Len %d String %q", r, r.Len(), r.String())
	}
	one := PortRange{25565, 25565}
	if one.Len() != 1 || one.String() != "25565" {
		t.Errorf("%v: Len %d String %q", one, one.Len(), one.String())
	}
	if (PortRange{}).Len() != 0 || (PortRange{1, 65535}).Len() != 65535 {
		t.Error("Len of the zero or the full range")
	}
	if !r.Overlaps(PortRange{2458, 3000}) || r.Overlaps(PortRange{2459, 3000}) || !r.Contains(2457) || r.Contains(2459) {
		t.Error("Overlaps/Contains")
	}
	if back, err := ParsePortRange(r.String()); err != nil || back != r {
		t.Errorf("round trip: %v %v", back, err)
	}
}
