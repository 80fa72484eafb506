package probetest

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// JavaStatus is what a Minecraft Java server says about itself.
type JavaStatus struct {
	Version    string // version.name, e.g. "1.21.4"
	Protocol   int    // version.protocol
	Players    int    // players.online
	MaxPlayers int    // players.max
	// Description is the MOTD: a string, or a chat component (a map or
	// slice) put into the status JSON as it is. The legacy ping answers
	// with it only when it is a string.
	Description any
	// LegacyOnly makes the server one from before 1.7: it answers only the
	// legacy 0xFE ping and kicks a modern handshake.
	LegacyOnly bool
	// Pre14 answers the legacy ping in the pre-1.4 "motd§players§max"
	// form instead of the 1.4+ "§1\0..." form.
	Pre14 bool
}

// connTimeout bounds one client's conversation with a test server.
const connTimeout = 10 * time.Second

// maxPacket bounds what the test server reads from a client.
const maxPacket = 1 << 16

// ServeMinecraftJava answers the Server List Ping (handshake, status
// request, ping) and the legacy 0xFE ping on every connection l accepts,
// until l is closed.
func ServeMinecraftJava(l net.Listener, st JavaStatus) error {
	for {
		c, err := l.Accept()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		go serveJavaConn(c, st)
	}
}

// serveJavaConn tells the two pings apart by the first byte: 0xFE is the
// legacy ping, anything else the length of a modern handshake.
func serveJavaConn(c net.Conn, st JavaStatus) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(connTimeout))
	r := bufio.NewReader(c)
	first, err := r.Peek(1)
	switch {
	case err != nil:
	case first[0] == 0xfe:
		serveLegacy(c, r, st)
	case st.LegacyOnly:
		drain(c, r)
		_, _ = c.Write(kick("Outdated client! Please use 1.5.2"))
	default:
		_ = serveStatus(c, r, st)
	}
}

// serveStatus answers a handshake, a status request and a ping in turn.
func serveStatus(c net.Conn, r *bufio.Reader, st JavaStatus) error {
	id, body, err := readPacket(r)
	if err != nil || id != 0x00 || !isStatusHandshake(body) {
		return fmt.Errorf("not a status handshake: %v", err)
	}
	if id, body, err = readPacket(r); err != nil || id != 0x00 || len(body) != 0 {
		return fmt.Errorf("not a status request: %v", err)
	}
	js, err := statusJSON(st)
	if err != nil {
		return err
	}
	if _, err := c.Write(packet(0x00, appendString(nil, js))); err != nil {
		return err
	}
	if id, body, err = readPacket(r); err != nil || id != 0x01 || len(body) != 8 {
		return fmt.Errorf("not a ping: %v", err)
	}
	_, err = c.Write(packet(0x01, body))
	return err
}

// isStatusHandshake checks a handshake body: protocol VarInt, address
// String, port unsigned short, next state VarInt 1.
func isStatusHandshake(b []byte) bool {
	_, b, ok := varInt(b)
	if !ok {
		return false
	}
	n, b, ok := varInt(b)
	if !ok || n < 0 || int(n)+2 > len(b) {
		return false
	}
	next, rest, ok := varInt(b[n+2:])
	return ok && next == 1 && len(rest) == 0
}

// statusJSON is the Status Response's JSON.
func statusJSON(st JavaStatus) (string, error) {
	v := map[string]any{
		"version":     map[string]any{"name": st.Version, "protocol": st.Protocol},
		"players":     map[string]any{"max": st.MaxPlayers, "online": st.Players},
		"description": st.Description,
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// serveLegacy answers the legacy ping, 0xFE followed by 0x01 since 1.4,
// with a kick carrying the status.
func serveLegacy(c net.Conn, r *bufio.Reader, st JavaStatus) {
	drain(c, r)
	motd, _ := st.Description.(string)
	p, m := strconv.Itoa(st.Players), strconv.Itoa(st.MaxPlayers)
	msg := strings.Join([]string{"§1", strconv.Itoa(st.Protocol), st.Version, motd, p, m}, "\x00")
	if st.Pre14 {
		msg = motd + "§" + p + "§" + m
	}
	_, _ = c.Write(kick(msg))
}

// kick is a legacy Kick packet: 0xFF, length in UTF-16 units, UTF-16BE.
func kick(msg string) []byte {
	units := utf16.Encode([]rune(msg))
	b := []byte{0xff}
	b = binary.BigEndian.AppendUint16(b, uint16(len(units)))
	for _, u := range units {
		b = binary.BigEndian.AppendUint16(b, u)
	}
	return b
}

// drain reads what the client sent until it pauses, so closing the
// connection does not reset it and lose our answer.
func drain(c net.Conn, r *bufio.Reader) {
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = io.Copy(io.Discard, r)
	_ = c.SetDeadline(time.Now().Add(connTimeout))
}

// readPacket reads a length-prefixed packet and splits off its id.
func readPacket(r *bufio.Reader) (int32, []byte, error) {
	n, err := readVarInt(r)
	if err != nil {
		return 0, nil, err
	}
	if n < 1 || n > maxPacket {
		return 0, nil, fmt.Errorf("packet length %d", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	id, body, ok := varInt(buf)
	if !ok {
		return 0, nil, errors.New("bad packet id")
	}
	return id, body, nil
}

// readVarInt reads a VarInt of at most 5 bytes from r.
func readVarInt(r io.ByteReader) (int32, error) {
	var v uint32
	for i := range 5 {
		c, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c < 0x80 {
			return int32(v), nil
		}
	}
	return 0, errors.New("VarInt too long")
}

// varInt reads a VarInt from the start of b and returns the rest.
func varInt(b []byte) (int32, []byte, bool) {
	var v uint32
	for i := 0; i < 5 && i < len(b); i++ {
		v |= uint32(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return int32(v), b[i+1:], true
		}
	}
	return 0, nil, false
}

// appendVarInt appends v as a VarInt.
func appendVarInt(b []byte, v int32) []byte {
	u := uint32(v)
	for ; u >= 0x80; u >>= 7 {
		b = append(b, byte(u&0x7f|0x80))
	}
	return append(b, byte(u))
}

// appendString appends a String: VarInt byte length, UTF-8.
func appendString(b []byte, s string) []byte {
	return append(appendVarInt(b, int32(len(s))), s...)
}

// packet frames a packet: VarInt length, VarInt id, body.
func packet(id int32, body []byte) []byte {
	inner := append(appendVarInt(nil, id), body...)
	return append(appendVarInt(nil, int32(len(inner))), inner...)
}
