package probe

import (
	"bytes"
	"errors"
	"testing"
	"unicode/utf16"
)

// legacyAnswer is a Kick packet: 0xFF, length in UTF-16 units, UTF-16BE
// (wiki.vg "Server List Ping", 1.4 to 1.5).
func legacyAnswer(s string) []byte {
	units := utf16.Encode([]rune(s))
	b := []byte{0xff, byte(len(units) >> 8), byte(len(units))}
	for _, u := range units {
		b = append(b, byte(u>>8), byte(u))
	}
	return b
}

func TestLegacyPingRequest(t *testing.T) {
	if want := []byte{0xfe, 0x01}; !bytes.Equal(legacyPingRequest, want) {
		t.Errorf("legacy ping = % x, want % x", legacyPingRequest, want)
	}
}

func TestDecodeLegacyPing(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want Info
	}{{
		name: "pre-1.4 by hand: A§1§2",
		in:   []byte{0xff, 0x00, 0x05, 0x00, 'A', 0x00, 0xa7, 0x00, '1', 0x00, 0xa7, 0x00, '2'},
		want: Info{Name: "A", Players: 1, MaxPlayers: 2},
	}, {
		name: "1.4+ by hand: §1 NUL 61 NUL 1.5.2 NUL M NUL 3 NUL 9",
		in: []byte{0xff, 0x00, 0x11, // 17 UTF-16 units
			0x00, 0xa7, 0x00, '1', 0x00, 0x00,
			0x00, '6', 0x00, '1', 0x00, 0x00,
			0x00, '1', 0x00, '.', 0x00, '5', 0x00, '.', 0x00, '2', 0x00, 0x00,
			0x00, 'M', 0x00, 0x00,
			0x00, '3', 0x00, 0x00,
			0x00, '9'},
		want: Info{Name: "M", Version: "1.5.2", Players: 3, MaxPlayers: 9},
	}, {
		name: "1.4+ with formatting and non-BMP text",
		in:   legacyAnswer("§1\x0078\x001.6.4\x00§aHello 🎮\x000\x0020"),
		want: Info{Name: "Hello 🎮", Version: "1.6.4", Players: 0, MaxPlayers: 20},
	}} {
		got, err := decodeLegacyPing(bytes.NewReader(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

func TestDecodeLegacyPingMalformed(t *testing.T) {
	for name, in := range map[string][]byte{
		"empty":             nil,
		"not a kick":        {0x02, 0x00, 0x00},
		"truncated":         {0xff, 0x00, 0x05, 0x00, 'A'},
		"no fields":         legacyAnswer("just a kick message"),
		"1.4 missing field": legacyAnswer("§1\x0061\x001.5\x00motd\x003"),
		"1.4 extra field":   legacyAnswer("§1\x0061\x001.5\x00motd\x003\x004\x005"),
		"players not a num": legacyAnswer("motd§many§20"),
		"max not a num":     legacyAnswer("§1\x0061\x001.5\x00motd\x003\x00lots"),
	} {
		_, err := decodeLegacyPing(bytes.NewReader(in))
		if err == nil {
			t.Errorf("%s: decoded % x", name, in)
			continue
		}
		if !errors.Is(ioError("x", err), ErrBadAnswer) {
			t.Errorf("%s: %v is not classified as a bad answer", name, err)
		}
	}
}
