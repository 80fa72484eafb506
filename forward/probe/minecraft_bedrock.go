package probe

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Minecraft Bedrock Edition answers RakNet's Unconnected Ping before any
// connection exists, as described on wiki.vg ("Raknet Protocol") and
// wiki.bedrock.dev ("RakNet and MCPE"). Integers are big-endian.
//
//	ping: 0x01 · int64 time · magic[16] · int64 client GUID
//	pong: 0x1C · int64 time (echoed) · int64 server GUID · magic[16] ·
//	      uint16 length · "MCPE;motd;protocol;version;players;max;serverid;submotd;gamemode;..."

// raknetMagic is RakNet's "offline message" id, carried by every
// unconnected packet.
var raknetMagic = []byte{
	0x00, 0xff, 0xff, 0x00, 0xfe, 0xfe, 0xfe, 0xfe,
	0xfd, 0xfd, 0xfd, 0xfd, 0x12, 0x34, 0x56, 0x78,
}

// RakNet message ids.
const (
	raknetUnconnectedPing = 0x01
	raknetUnconnectedPong = 0x1c
)

// bedrockPongHeader is the pong's fixed part: id, time, GUID, magic,
// string length.
const bedrockPongHeader = 1 + 8 + 8 + 16 + 2

// encodeBedrockPing is an Unconnected Ping carrying the client's time
// and GUID.
func encodeBedrockPing(sent, guid int64) []byte {
	b := []byte{raknetUnconnectedPing}
	b = binary.BigEndian.AppendUint64(b, uint64(sent))
	b = append(b, raknetMagic...)
	return binary.BigEndian.AppendUint64(b, uint64(guid))
}

// decodeBedrockPong reads an Unconnected Pong, checks it carries the
// magic and echoes wantTime, and returns what its status string says.
func decodeBedrockPong(b []byte, wantTime int64) (Info, error) {
	if len(b) > 0 && b[0] != raknetUnconnectedPong {
		return Info{}, badAnswer("RakNet answer id 0x%02x, want 0x1c (unconnected pong)", b[0])
	}
	if len(b) < bedrockPongHeader {
		return Info{}, badAnswer("%d bytes is too short for a RakNet pong", len(b))
	}
	if got := int64(binary.BigEndian.Uint64(b[1:9])); got != wantTime {
		return Info{}, badAnswer("pong echoes time %d, want %d", got, wantTime)
	}
	if !bytes.Equal(b[17:33], raknetMagic) {
		return Info{}, badAnswer("pong lacks the RakNet offline-message magic")
	}
	n := int(binary.BigEndian.Uint16(b[33:35]))
	if n > len(b)-bedrockPongHeader {
		return Info{}, badAnswer("pong string length %d, but %d bytes follow", n, len(b)-bedrockPongHeader)
	}
	return parseBedrockStatus(string(b[bedrockPongHeader : bedrockPongHeader+n]))
}

// parseBedrockStatus reads the pong's semicolon-separated status:
// edition, MOTD, protocol, version, players, max players, then optional
// fields we do not need.
func parseBedrockStatus(s string) (Info, error) {
	f := strings.Split(s, ";")
	if len(f) < 6 {
		return Info{}, badAnswer("pong status has %d fields, want at least 6", len(f))
	}
	players, err1 := strconv.Atoi(f[4])
	maxPlayers, err2 := strconv.Atoi(f[5])
	if err1 != nil || err2 != nil {
		return Info{}, badAnswer("pong player counts %q/%q are not numbers", f[4], f[5])
	}
	return Info{
		Name:       plainText(f[1]),
		Version:    plainText(f[3]),
		Players:    players,
		MaxPlayers: maxPlayers,
	}, nil
}

// probeBedrock sends Unconnected Pings until a pong comes back. Every copy
// carries the same time, so a late pong to an earlier copy still matches.
func probeBedrock(ctx context.Context, addr netip.AddrPort, d Dialer) (Info, time.Duration, error) {
	conn, closeConn, err := dial(ctx, d, "udp", addr)
	if err != nil {
		return Info{}, 0, err
	}
	defer closeConn()
	now := time.Now().UnixMilli()
	answer, latency, err := exchangeUDP(ctx, conn, encodeBedrockPing(now, rand.Int64()))
	if err != nil {
		return Info{}, 0, err
	}
	info, err := decodeBedrockPong(answer, now)
	if err != nil {
		return Info{}, 0, ioError("reading the pong", err)
	}
	return info, latency, nil
}
