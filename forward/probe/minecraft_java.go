package probe

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// Minecraft Java Edition Server List Ping, as described on wiki.vg
// ("Server List Ping" and "Protocol"): every packet is
// VarInt length · VarInt packet id · fields, and the status exchange is
// Handshake (next state 1) → Status Request → Status Response (JSON) →
// Ping → Pong.

// maxJavaPacket bounds a packet we read. The status JSON is a protocol
// String of at most 32767 UTF-16 units, at most 3 UTF-8 bytes each, so
// 128 KiB holds the largest legal status response with room to spare.
const maxJavaPacket = 128 << 10

// maxVarIntLen is the longest VarInt: 5 bytes of 7 bits carry 32 bits
// (wiki.vg "Protocol", VarInt and VarLong).
const maxVarIntLen = 5

// javaProtocolVersion is the version the handshake announces: -1 by
// convention when pinging to learn which version a server speaks
// (wiki.vg "Server List Ping", Handshake).
const javaProtocolVersion = -1

// Packet ids in the status state (wiki.vg "Server List Ping").
const (
	javaHandshakeID = 0x00 // serverbound, handshaking state
	javaStatusID    = 0x00 // Status Request (serverbound) and Response (clientbound)
	javaPingID      = 0x01 // Ping Request (serverbound) and Pong (clientbound)
	javaNextStatus  = 1    // handshake next state: status
)

// appendVarInt appends v as a VarInt: 7 bits per byte, least significant
// group first, the high bit set on every byte but the last; negative
// numbers are their two's complement and always take 5 bytes.
func appendVarInt(b []byte, v int32) []byte {
	u := uint32(v)
	for u >= 0x80 {
		b = append(b, byte(u)|0x80)
		u >>= 7
	}
	return append(b, byte(u))
}

// readVarInt reads one VarInt, refusing one longer than 5 bytes.
func readVarInt(r io.ByteReader) (int32, error) {
	var u uint32
	for i := 0; i < maxVarIntLen; i++ {
		c, err := r.ReadByte()
		if err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		u |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return int32(u), nil
		}
	}
	return 0, badAnswer("VarInt longer than %d bytes", maxVarIntLen)
}

// appendJavaString appends s as a protocol String: VarInt byte length,
// then UTF-8.
func appendJavaString(b []byte, s string) []byte {
	return append(appendVarInt(b, int32(len(s))), s...)
}

// javaPacket frames id and body as one packet: VarInt length of id+body.
func javaPacket(id int32, body []byte) []byte {
	inner := append(appendVarInt(nil, id), body...)
	return append(appendVarInt(nil, int32(len(inner))), inner...)
}

// encodeHandshake is the Handshake packet: protocol version VarInt,
// server address String, port unsigned short big-endian, next state 1.
func encodeHandshake(host string, port uint16) []byte {
	body := appendVarInt(nil, javaProtocolVersion)
	body = appendJavaString(body, host)
	body = binary.BigEndian.AppendUint16(body, port)
	body = appendVarInt(body, javaNextStatus)
	return javaPacket(javaHandshakeID, body)
}

// encodeStatusRequest is the Status Request packet: no fields.
func encodeStatusRequest() []byte { return javaPacket(javaStatusID, nil) }

// encodeJavaPing is the Ping Request packet: a long the server echoes.
func encodeJavaPing(payload int64) []byte {
	return javaPacket(javaPingID, binary.BigEndian.AppendUint64(nil, uint64(payload)))
}

// readJavaPacket reads one packet, its length bounded by maxJavaPacket,
// and returns its id and the bytes after the id.
func readJavaPacket(r *bufio.Reader) (int32, []byte, error) {
	n, err := readVarInt(r)
	if err != nil {
		return 0, nil, err
	}
	if n < 1 || n > maxJavaPacket {
		return 0, nil, badAnswer("packet length %d outside 1..%d", n, maxJavaPacket)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, unexpectedEOF(err)
	}
	br := bytes.NewReader(buf)
	id, err := readVarInt(br)
	if err != nil {
		return 0, nil, badAnswer("packet id: %v", unexpectedEOF(err))
	}
	return id, buf[len(buf)-br.Len():], nil
}

// unexpectedEOF turns io.EOF into io.ErrUnexpectedEOF: the stream ended
// inside something it had announced.
func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decodeJavaStatus reads a framed Status Response (packet 0x00, one JSON
// String) and returns what it says.
func decodeJavaStatus(r *bufio.Reader) (Info, error) {
	id, body, err := readJavaPacket(r)
	if err != nil {
		return Info{}, err
	}
	if id != javaStatusID {
		return Info{}, badAnswer("status response has packet id 0x%02x, want 0x00", id)
	}
	js, err := readJavaString(body)
	if err != nil {
		return Info{}, err
	}
	return parseJavaStatusJSON(js)
}

// readJavaString reads a String from the start of b, bounded by b.
func readJavaString(b []byte) ([]byte, error) {
	br := bytes.NewReader(b)
	n, err := readVarInt(br)
	if err != nil {
		return nil, badAnswer("string length: %v", unexpectedEOF(err))
	}
	if n < 0 || int(n) > br.Len() {
		return nil, badAnswer("string length %d, but %d bytes follow", n, br.Len())
	}
	start := len(b) - br.Len()
	return b[start : start+int(n)], nil
}

// javaStatusJSON is the part of the status JSON we read (wiki.vg
// "Server List Ping", Status Response).
type javaStatusJSON struct {
	Version struct {
		Name string `json:"name"`
	} `json:"version"`
	Players struct {
		Max    int `json:"max"`
		Online int `json:"online"`
	} `json:"players"`
	Description json.RawMessage `json:"description"`
}

// parseJavaStatusJSON reads the status JSON; description is a plain
// string or a chat component, flattened to plain text.
func parseJavaStatusJSON(b []byte) (Info, error) {
	var st javaStatusJSON
	if err := json.Unmarshal(b, &st); err != nil {
		return Info{}, badAnswer("status is not the expected JSON: %v", err)
	}
	var desc any
	if len(st.Description) > 0 {
		if err := json.Unmarshal(st.Description, &desc); err != nil {
			return Info{}, badAnswer("status description: %v", err)
		}
	}
	return Info{
		Name:       plainText(flattenChat(desc, 0)),
		Version:    plainText(st.Version.Name),
		Players:    st.Players.Online,
		MaxPlayers: st.Players.Max,
	}, nil
}

// decodeJavaPong reads a Pong (packet 0x01) and checks it echoes want.
func decodeJavaPong(r *bufio.Reader, want int64) error {
	id, body, err := readJavaPacket(r)
	if err != nil {
		return err
	}
	if id != javaPingID || len(body) != 8 {
		return badAnswer("pong is packet 0x%02x of %d bytes, want 0x01 of 8", id, len(body))
	}
	if got := int64(binary.BigEndian.Uint64(body)); got != want {
		return badAnswer("pong echoes %d, want %d", got, want)
	}
	return nil
}

// probeMinecraftJava runs the Server List Ping. A server that answers it
// in a way we cannot read may predate it (before 1.7), so a bad answer
// (not silence, not a refusal) is retried with the legacy 0xFE ping.
func probeMinecraftJava(ctx context.Context, addr netip.AddrPort, d Dialer) (Info, time.Duration, error) {
	info, latency, err := javaStatusPing(ctx, addr, d)
	if err == nil || !errors.Is(err, ErrBadAnswer) {
		return info, latency, err
	}
	info, latency, lerr := javaLegacyPing(ctx, addr, d)
	if lerr != nil {
		return Info{}, 0, fmt.Errorf("%w; legacy ping: %v", err, lerr)
	}
	return info, latency, nil
}

// javaStatusPing runs handshake, status and ping/pong on one connection.
// The latency is the ping/pong round trip; a server that answered the
// status but not the ping is still proven, with the status round trip.
func javaStatusPing(ctx context.Context, addr netip.AddrPort, d Dialer) (Info, time.Duration, error) {
	conn, closeConn, err := dial(ctx, d, "tcp", addr)
	if err != nil {
		return Info{}, 0, err
	}
	defer closeConn()
	r := bufio.NewReader(conn)
	req := append(encodeHandshake(addr.Addr().Unmap().String(), addr.Port()), encodeStatusRequest()...)
	start := time.Now()
	if _, err := conn.Write(req); err != nil {
		return Info{}, 0, ioError("sending the handshake", err)
	}
	info, err := decodeJavaStatus(r)
	if err != nil {
		return Info{}, 0, ioError("reading the status response", err)
	}
	statusRTT := time.Since(start)
	if rtt, err := javaPingPong(conn, r); err == nil {
		return info, rtt, nil
	}
	return info, statusRTT, nil
}

// javaPingPong sends a Ping and times its Pong.
func javaPingPong(conn net.Conn, r *bufio.Reader) (time.Duration, error) {
	start := time.Now()
	payload := start.UnixMilli()
	if _, err := conn.Write(encodeJavaPing(payload)); err != nil {
		return 0, err
	}
	if err := decodeJavaPong(r, payload); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
