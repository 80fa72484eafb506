package probe

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// The legacy Server List Ping of Minecraft Java before 1.7, as described
// on wiki.vg ("Server List Ping", 1.4 to 1.5 and Beta 1.8 to 1.3): the
// client sends 0xFE 0x01 and the server answers with a Kick packet, 0xFF,
// an unsigned short length in UTF-16 units, and a UTF-16BE string.

// legacyPingRequest is the 1.4–1.5 ping; 1.6 and later servers answer it
// too, and servers before 1.4 ignore the 0x01.
var legacyPingRequest = []byte{0xfe, 0x01}

// legacyKickID is the Kick packet that carries the answer.
const legacyKickID = 0xff

// legacyMagic starts a 1.4+ answer: §1 NUL, then NUL-separated
// protocol, version, MOTD, players, max players.
const legacyMagic = "§1\x00"

// decodeLegacyPing reads a legacy ping answer. Its length is an unsigned
// short, so it is bounded at 64 Ki UTF-16 units (128 KiB).
func decodeLegacyPing(r io.Reader) (Info, error) {
	var hdr [3]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Info{}, err
	}
	if hdr[0] != legacyKickID {
		return Info{}, badAnswer("legacy ping answer starts 0x%02x, want 0xff", hdr[0])
	}
	units := make([]uint16, binary.BigEndian.Uint16(hdr[1:]))
	if err := binary.Read(r, binary.BigEndian, units); err != nil {
		return Info{}, unexpectedEOF(err)
	}
	return parseLegacyPing(string(utf16.Decode(units)))
}

// parseLegacyPing reads the answer's string: the 1.4+ form
// "§1\0proto\0version\0motd\0players\0max", or the older "motd§players§max".
func parseLegacyPing(s string) (Info, error) {
	var info Info
	var players, maxPlayers string
	if rest, ok := strings.CutPrefix(s, legacyMagic); ok {
		f := strings.Split(rest, "\x00")
		if len(f) != 5 {
			return Info{}, badAnswer("legacy ping answer has %d fields, want 5", len(f))
		}
		info.Version, info.Name, players, maxPlayers = plainText(f[1]), plainText(f[2]), f[3], f[4]
	} else {
		f := strings.Split(s, "§")
		if len(f) < 3 {
			return Info{}, badAnswer("legacy ping answer is not motd§players§max")
		}
		n := len(f)
		info.Name, players, maxPlayers = plainText(strings.Join(f[:n-2], "§")), f[n-2], f[n-1]
	}
	var err error
	if info.Players, err = legacyNumber(players); err != nil {
		return Info{}, err
	}
	if info.MaxPlayers, err = legacyNumber(maxPlayers); err != nil {
		return Info{}, err
	}
	return info, nil
}

// legacyNumber parses a player count of the legacy answer.
func legacyNumber(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, badAnswer("legacy ping player count %q is not a number", s)
	}
	return n, nil
}

// javaLegacyPing runs the legacy ping on a new connection; the latency is
// from request to answer.
func javaLegacyPing(ctx context.Context, addr netip.AddrPort, d Dialer) (Info, time.Duration, error) {
	conn, closeConn, err := dial(ctx, d, "tcp", addr)
	if err != nil {
		return Info{}, 0, err
	}
	defer closeConn()
	start := time.Now()
	if _, err := conn.Write(legacyPingRequest); err != nil {
		return Info{}, 0, ioError("sending the legacy ping", err)
	}
	info, err := decodeLegacyPing(bufio.NewReader(conn))
	if err != nil {
		return Info{}, 0, ioError("reading the legacy ping answer", err)
	}
	return info, time.Since(start), nil
}
