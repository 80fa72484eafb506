package probetest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
)

// BedrockStatus is what a Minecraft Bedrock server puts in its pong.
type BedrockStatus struct {
	Edition    string // "MCPE" when empty; "MCEE" for Education Edition
	MOTD       string
	Protocol   int
	Version    string
	Players    int
	MaxPlayers int
	ServerGUID int64
	SubMOTD    string // the second MOTD line, usually the world name
	GameMode   string // e.g. "Survival"
}

// offlineMagic is RakNet's offline-message id.
var offlineMagic = []byte{0x00, 0xff, 0xff, 0x00, 0xfe, 0xfe, 0xfe, 0xfe, 0xfd, 0xfd, 0xfd, 0xfd, 0x12, 0x34, 0x56, 0x78}

// ServeBedrock answers every RakNet Unconnected Ping (0x01, or 0x02 "open
// connections") on pc with an Unconnected Pong, until pc is closed.
func ServeBedrock(pc net.PacketConn, st BedrockStatus) error {
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		if pong, ok := bedrockPong(buf[:n], st); ok {
			_, _ = pc.WriteTo(pong, from)
		}
	}
}

// bedrockPong answers ping, 0x01|0x02 · time(8) · magic(16) · GUID(8),
// with 0x1C · time · server GUID · magic · length(2) · status.
func bedrockPong(ping []byte, st BedrockStatus) ([]byte, bool) {
	if len(ping) != 33 || (ping[0] != 0x01 && ping[0] != 0x02) || !bytes.Equal(ping[9:25], offlineMagic) {
		return nil, false
	}
	s := bedrockStatusString(st)
	b := append([]byte{0x1c}, ping[1:9]...)
	b = binary.BigEndian.AppendUint64(b, uint64(st.ServerGUID))
	b = append(b, offlineMagic...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...), true
}

// bedrockStatusString is the pong's status: edition;MOTD;protocol;
// version;players;max;server id;sub-MOTD;game mode;game mode number;
// IPv4 port;IPv6 port;
func bedrockStatusString(st BedrockStatus) string {
	ed := st.Edition
	if ed == "" {
		ed = "MCPE"
	}
	return fmt.Sprintf("%s;%s;%d;%s;%d;%d;%d;%s;%s;1;19132;19133;",
		ed, st.MOTD, st.Protocol, st.Version, st.Players, st.MaxPlayers,
		uint64(st.ServerGUID), st.SubMOTD, st.GameMode)
}
