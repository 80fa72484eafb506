package probe

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// Byte layouts below are written out by hand from wiki.vg "Protocol"
// (VarInt) and "Server List Ping" (handshake, status, ping).

func TestAppendVarInt(t *testing.T) {
	for _, tc := range []struct {
		v    int32
		want []byte
	}{
		{0, []byte{0x00}},
		{1, []byte{0x01}},
		{127, []byte{0x7f}},
		{128, []byte{0x80, 0x01}},
		{255, []byte{0xff, 0x01}},
		{25565, []byte{0xdd, 0xc7, 0x01}},
		{2097151, []byte{0xff, 0xff, 0x7f}},
		{2147483647, []byte{0xff, 0xff, 0xff, 0xff, 0x07}},
		{-1, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}},
		{-2147483648, []byte{0x80, 0x80, 0x80, 0x80, 0x08}},
	} {
		if got := appendVarInt(nil, tc.v); !bytes.Equal(got, tc.want) {
			t.Errorf("appendVarInt(%d) = % x, want % x", tc.v, got, tc.want)
		}
		got, err := readVarInt(bytes.NewReader(tc.want))
		if err != nil || got != tc.v {
			t.Errorf("readVarInt(% x) = %d, %v; want %d", tc.want, got, err, tc.v)
		}
	}
}

func TestReadVarIntMalformed(t *testing.T) {
	for name, in := range map[string][]byte{
		"six bytes": {0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"truncated": {0xff, 0xff},
		"empty":     {},
	} {
		r := bytes.NewReader(in)
		if _, err := readVarInt(r); err == nil {
			t.Errorf("%s: readVarInt(% x) succeeded", name, in)
		}
		if read := len(in) - r.Len(); read > maxVarIntLen {
			t.Errorf("%s: read %d bytes, more than %d", name, read, maxVarIntLen)
		}
	}
}

func TestJavaEncoders(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want []byte
	}{{
		name: "handshake localhost:25565",
		got:  encodeHandshake("localhost", 25565),
		want: []byte{
			0x13,                         // length 19
			0x00,                         // packet id: handshake
			0xff, 0xff, 0xff, 0xff, 0x0f, // protocol version -1
			0x09, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', // address
			0x63, 0xdd, // port 25565, big-endian
			0x01, // next state: status
		},
	}, {
		name: "handshake 192.0.2.1:1",
		got:  encodeHandshake("192.0.2.1", 1),
		want: []byte{0x13, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f,
			0x09, '1', '9', '2', '.', '0', '.', '2', '.', '1', 0x00, 0x01, 0x01},
	}, {
		name: "status request",
		got:  encodeStatusRequest(),
		want: []byte{0x01, 0x00},
	}, {
		name: "ping 1",
		got:  encodeJavaPing(1),
		want: []byte{0x09, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x01},
	}, {
		name: "ping -2",
		got:  encodeJavaPing(-2),
		want: []byte{0x09, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe},
	}} {
		if !bytes.Equal(tc.got, tc.want) {
			t.Errorf("%s:\n got % x\nwant % x", tc.name, tc.got, tc.want)
		}
	}
}

// statusFrame frames a short status JSON by hand: length (id + string
// length byte + JSON), id 0x00, string length, JSON. JSON under 125
// bytes keeps every VarInt one byte.
func statusFrame(js string) []byte {
	return append([]byte{byte(len(js) + 2), 0x00, byte(len(js))}, js...)
}

func TestDecodeJavaStatus(t *testing.T) {
	long := `{"description":"` + strings.Repeat("x", 120) + `"}` // 16 + 120 + 2 = 138 bytes
	for _, tc := range []struct {
		name string
		in   []byte
		want Info
	}{{
		name: "plain description",
		in:   statusFrame(`{"version":{"name":"1.21.4","protocol":769},"players":{"max":20,"online":3},"description":"A Server"}`),
		want: Info{Name: "A Server", Version: "1.21.4", Players: 3, MaxPlayers: 20},
	}, {
		name: "chat component with extra and § codes",
		in:   statusFrame(`{"players":{"max":5,"online":0},"description":{"text":"§aHi ","extra":[{"text":"§lthere"},"\n!"]}}`),
		want: Info{Name: "Hi there !", Players: 0, MaxPlayers: 5},
	}, {
		name: "array component",
		in:   statusFrame(`{"description":[{"text":"a"},{"text":"b","extra":[{"text":"c"}]}]}`),
		want: Info{Name: "abc"},
	}, {
		name: "two-byte lengths",
		in:   append([]byte{0x8d, 0x01, 0x00, 0x8a, 0x01}, long...), // 141 = id 1 + length 2 + 138
		want: Info{Name: strings.Repeat("x", 120)},
	}} {
		got, err := decodeJavaStatus(bufio.NewReader(bytes.NewReader(tc.in)))
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

func TestDecodeJavaStatusMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"zero length", []byte{0x00}},
		{"length over the bound", []byte{0xff, 0xff, 0xff, 0x7f, 0x00}},
		{"negative length", []byte{0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"length VarInt too long", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"truncated body", []byte{0x10, 0x00, 0x02, '{'}},
		{"wrong packet id", []byte{0x04, 0x01, 0x02, '{', '}'}},
		{"string longer than packet", []byte{0x04, 0x00, 0x7f, '{', '}'}},
		{"negative string length", []byte{0x07, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f, '{'}},
		{"not JSON", statusFrame(`hello`)},
		{"JSON not an object", statusFrame(`[1,2]`)},
		{"players not numbers", statusFrame(`{"players":{"max":"20","online":1}}`)},
		{"packet id missing", []byte{0x01, 0x80}},
	} {
		_, err := decodeJavaStatus(bufio.NewReader(bytes.NewReader(tc.in)))
		if err == nil {
			t.Errorf("%s: decoded % x", tc.name, tc.in)
			continue
		}
		if !errors.Is(ioError("x", err), ErrBadAnswer) {
			t.Errorf("%s: %v is not classified as a bad answer", tc.name, err)
		}
	}
}

// endless is a reader that never runs out of 0xff bytes.
type endless struct{ n int }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0xff
	}
	e.n += len(p)
	return len(p), nil
}

func TestJavaPacketLengthBound(t *testing.T) {
	src := &endless{}
	r := bufio.NewReaderSize(io.MultiReader(bytes.NewReader([]byte{0x80, 0x80, 0x10}), src), 16)
	if _, err := decodeJavaStatus(r); !errors.Is(err, ErrBadAnswer) {
		t.Fatalf("a 32 MiB packet: got %v, want ErrBadAnswer", err)
	}
	if src.n > 16 {
		t.Errorf("read %d bytes of a packet over the bound", src.n)
	}
}

func TestDecodeJavaPong(t *testing.T) {
	ok := []byte{0x09, 0x01, 0, 0, 0, 0, 0, 0, 0x30, 0x39} // 12345
	if err := decodeJavaPong(bufio.NewReader(bytes.NewReader(ok)), 12345); err != nil {
		t.Errorf("valid pong: %v", err)
	}
	for name, in := range map[string][]byte{
		"wrong payload": ok,
		"wrong id":      {0x09, 0x00, 0, 0, 0, 0, 0, 0, 0x30, 0x39},
		"short":         {0x05, 0x01, 0, 0, 0x30, 0x39},
	} {
		if err := decodeJavaPong(bufio.NewReader(bytes.NewReader(in)), 1); !errors.Is(err, ErrBadAnswer) {
			t.Errorf("%s: got %v, want ErrBadAnswer", name, err)
		}
	}
}

func TestPlainText(t *testing.T) {
	for in, want := range map[string]string{
		"§6§lGold§r server":     "Gold server",
		"two\nlines  here":      "two lines here",
		"trailing §":            "trailing",
		"ctrl\x00\x07chars":     "ctrlchars",
		"§§x":                   "x",
		"unicode ✓ §cred stays": "unicode ✓ red stays",
	} {
		if got := plainText(in); got != want {
			t.Errorf("plainText(%q) = %q, want %q", in, got, want)
		}
	}
}
