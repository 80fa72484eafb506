package probe

import (
	"bytes"
	"errors"
	"testing"
)

// Byte layouts below are written out by hand from wiki.vg "Raknet
// Protocol" (Unconnected Ping/Pong) and wiki.bedrock.dev "RakNet and MCPE".

func TestEncodeBedrockPing(t *testing.T) {
	got := encodeBedrockPing(0x0102030405060708, 0x1112131415161718)
	want := []byte{
		0x01,                                           // Unconnected Ping
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // time
		0x00, 0xff, 0xff, 0x00, 0xfe, 0xfe, 0xfe, 0xfe, // magic
		0xfd, 0xfd, 0xfd, 0xfd, 0x12, 0x34, 0x56, 0x78,
		0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, // client GUID
	}
	if !bytes.Equal(got, want) {
		t.Errorf("ping:\n got % x\nwant % x", got, want)
	}
	if got := encodeBedrockPing(-1, 0); !bytes.Equal(got[1:9], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) {
		t.Errorf("time -1 encodes as % x", got[1:9])
	}
}

// pongHeader is a pong up to the string: id, time 0x2A, server GUID,
// magic.
var pongHeader = []byte{
	0x1c,
	0, 0, 0, 0, 0, 0, 0, 0x2a,
	0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8,
	0x00, 0xff, 0xff, 0x00, 0xfe, 0xfe, 0xfe, 0xfe,
	0xfd, 0xfd, 0xfd, 0xfd, 0x12, 0x34, 0x56, 0x78,
}

// pong is pongHeader, a big-endian length and s.
func pong(s string) []byte {
	b := append(append([]byte{}, pongHeader...), byte(len(s)>>8), byte(len(s)))
	return append(b, s...)
}

func TestDecodeBedrockPong(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want Info
	}{{
		name: "dedicated server, all fields",
		in:   pong("MCPE;Dedicated Server;527;1.19.1;2;10;13253860892328930865;Bedrock level;Survival;1;19132;19133;"),
		want: Info{Name: "Dedicated Server", Version: "1.19.1", Players: 2, MaxPlayers: 10},
	}, {
		name: "six fields, formatted MOTD",
		in:   pong("MCEE;§bSchool;1;1.0;0;30"),
		want: Info{Name: "School", Version: "1.0", Players: 0, MaxPlayers: 30},
	}, {
		name: "trailing bytes after the string are ignored",
		in:   append(pong("MCPE;m;1;v;1;2;"), 0xde, 0xad),
		want: Info{Name: "m", Version: "v", Players: 1, MaxPlayers: 2},
	}} {
		got, err := decodeBedrockPong(tc.in, 0x2a)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

func TestDecodeBedrockPongMalformed(t *testing.T) {
	badMagic := pong("MCPE;m;1;v;1;2;")
	badMagic[21] = 0x00
	wrongID := pong("MCPE;m;1;v;1;2;")
	wrongID[0] = 0x1d
	long := pong("MCPE;m;1;v;1;2;")
	long[34] = 0xff
	for name, in := range map[string][]byte{
		"empty":                 nil,
		"header only, no len":   pongHeader,
		"wrong id":              wrongID,
		"wrong magic":           badMagic,
		"string past the end":   long,
		"too few fields":        pong("MCPE;m;1;v;1"),
		"players not a number":  pong("MCPE;m;1;v;x;2;"),
		"the ping echoed back":  encodeBedrockPing(0x2a, 7),
		"answer to other time":  append(append([]byte{0x1c, 0, 0, 0, 0, 0, 0, 0, 0x2b}, pongHeader[9:]...), 0, 0),
		"an A2S answer instead": []byte("\xff\xff\xff\xffI\x11name\x00"),
	} {
		if _, err := decodeBedrockPong(in, 0x2a); !errors.Is(err, ErrBadAnswer) {
			t.Errorf("%s: got %v, want ErrBadAnswer", name, err)
		}
	}
}
