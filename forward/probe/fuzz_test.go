package probe

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func FuzzReadVarInt(f *testing.F) {
	for _, seed := range [][]byte{{0}, {0x7f}, {0x80, 0x01}, {0xdd, 0xc7, 0x01}, {0xff, 0xff, 0xff, 0xff, 0x0f}, {0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		v, err := readVarInt(r)
		if read := len(data) - r.Len(); read > maxVarIntLen {
			t.Fatalf("read %d bytes, more than %d", read, maxVarIntLen)
		}
		if err != nil {
			return
		}
		enc := appendVarInt(nil, v)
		if back, err := readVarInt(bytes.NewReader(enc)); err != nil || back != v || len(enc) > maxVarIntLen {
			t.Fatalf("%d encodes as % x (%d bytes), which reads back as %d, %v", v, enc, len(enc), back, err)
		}
	})
}

func FuzzDecodeJavaStatus(f *testing.F) {
	f.Add(statusFrame(`{"version":{"name":"1.21.4","protocol":769},"players":{"max":20,"online":3},"description":"A Server"}`))
	f.Add(statusFrame(`{"description":{"text":"§aHi","extra":[{"text":"x","extra":["y"]}]}}`))
	f.Add(statusFrame(`{"description":[[[[["deep"]]]]]}`))
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f, 0x00})
	f.Add([]byte{0x04, 0x00, 0x7f, '{', '}'})
	f.Fuzz(func(t *testing.T, data []byte) {
		cr := &countingReader{r: bytes.NewReader(data)}
		_, err := decodeJavaStatus(bufio.NewReaderSize(cr, 16))
		if err == nil && cr.n > maxJavaPacket+maxVarIntLen+16 {
			t.Fatalf("decoded a packet of %d bytes, over the %d bound", cr.n, maxJavaPacket)
		}
	})
}

func FuzzDecodeLegacyPing(f *testing.F) {
	f.Add(legacyAnswer("§1\x0061\x001.5.2\x00A Server\x003\x0020"))
	f.Add(legacyAnswer("Beta§1§8"))
	f.Add([]byte{0xff, 0xff, 0xff, 0x00})
	f.Add([]byte{0xff, 0x00, 0x01, 0xd8, 0x00}) // a lone surrogate
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		_, err := decodeLegacyPing(r)
		if read := len(data) - r.Len(); err == nil && read > 3+2*0xffff {
			t.Fatalf("read %d bytes, over the unsigned short bound", read)
		}
	})
}

func FuzzDecodeBedrockPong(f *testing.F) {
	f.Add(pong("MCPE;Dedicated Server;527;1.19.1;2;10;13253860892328930865;Bedrock level;Survival;1;19132;19133;"), int64(0x2a))
	f.Add(pong("MCPE;m;1;v;1"), int64(0x2a))
	f.Add(pongHeader, int64(0x2a))
	f.Fuzz(func(t *testing.T, data []byte, sent int64) {
		info, err := decodeBedrockPong(data, sent)
		if err == nil && (len(data) < bedrockPongHeader || len(info.Name) > len(data)) {
			t.Fatalf("decoded %+v from %d bytes", info, len(data))
		}
	})
}

func FuzzDecodeA2SInfo(f *testing.F) {
	f.Add(sourceInfo)
	f.Add(sourceInfo[:30])
	f.Add([]byte{0xfe, 0xff, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x6d, 'a', 0, 'b', 0, 'c', 0, 'd', 0, 'e', 0, 1, 2, 47})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x41, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := decodeA2SInfo(data)
		if err == nil && len(info.Name)+len(info.Map) > len(data) {
			t.Fatalf("decoded %+v from %d bytes", info, len(data))
		}
		if ch, ok := decodeA2SChallenge(data); ok && len(ch) != 4 {
			t.Fatalf("challenge of %d bytes", len(ch))
		}
	})
}
