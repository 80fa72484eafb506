package probetest

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
)

// A2SInfo is what a Source engine server says in its A2S_INFO response.
type A2SInfo struct {
	Protocol    byte
	Name        string
	Map         string
	Folder      string
	Game        string
	AppID       uint16
	Players     byte
	MaxPlayers  byte
	Bots        byte
	ServerType  byte // 'd' dedicated, 'l' listen, 'p' SourceTV
	Environment byte // 'l' Linux, 'w' Windows, 'm' macOS
	Visibility  byte // 0 public, 1 private
	VAC         byte // 0 unsecured, 1 secured
	Version     string
}

// a2sRequest is A2S_INFO's request without a challenge.
var a2sRequest = []byte("\xff\xff\xff\xffTSource Engine Query\x00")

// ServeA2S answers A2S_INFO requests on pc until pc is closed. With
// challenge, a request that does not carry this server's challenge is
// answered with S2C_CHALLENGE (0x41), and only one carrying it gets the
// info, as Source servers have done since 2020.
func ServeA2S(pc net.PacketConn, st A2SInfo, challenge bool) error {
	var ch [4]byte
	_, _ = rand.Read(ch[:])
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		if ans, ok := a2sAnswer(buf[:n], st, challenge, ch[:]); ok {
			_, _ = pc.WriteTo(ans, from)
		}
	}
}

// a2sAnswer is the answer to req: nothing if it is not A2S_INFO, the
// challenge if one is required and missing or wrong, else the info.
func a2sAnswer(req []byte, st A2SInfo, challenge bool, ch []byte) ([]byte, bool) {
	if !bytes.HasPrefix(req, a2sRequest) {
		return nil, false
	}
	got := req[len(a2sRequest):]
	if challenge && !bytes.Equal(got, ch) {
		return append([]byte{0xff, 0xff, 0xff, 0xff, 0x41}, ch...), true
	}
	return a2sInfo(st), true
}

// a2sInfo is the 0x49 response: header, protocol, name, map, folder,
// game, app id (little-endian short), players, max, bots, type,
// environment, visibility, VAC, version, and an empty extra data flag.
func a2sInfo(st A2SInfo) []byte {
	b := []byte{0xff, 0xff, 0xff, 0xff, 0x49, st.Protocol}
	for _, s := range []string{st.Name, st.Map, st.Folder, st.Game} {
		b = append(append(b, s...), 0)
	}
	b = binary.LittleEndian.AppendUint16(b, st.AppID)
	b = append(b, st.Players, st.MaxPlayers, st.Bots, st.ServerType, st.Environment, st.Visibility, st.VAC)
	if st.AppID == 2400 { // The Ship: mode, witnesses, duration
		b = append(b, 0, 0, 0)
	}
	b = append(append(b, st.Version...), 0)
	return append(b, 0) // EDF: no extra data
}
