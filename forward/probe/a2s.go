package probe

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"time"
)

// Valve's A2S_INFO server query, as described on the Valve Developer
// Community wiki ("Server queries"). Integers are little-endian; strings
// are NUL-terminated. Every single-packet message starts with a long -1.
//
//	request:   FF FF FF FF 54 "Source Engine Query\0" [challenge(4)]
//	challenge: FF FF FF FF 41 challenge(4)  (S2C_CHALLENGE: resend with it)
//	info:      FF FF FF FF 49 protocol name map folder game id(short)
//	           players max bots type environment visibility vac
//	           [the ship: mode witnesses duration] version EDF ...

// a2sSingle and a2sSplit are the headers of a whole message and of one
// part of a split (multi-packet) message.
var (
	a2sSingle = []byte{0xff, 0xff, 0xff, 0xff}
	a2sSplit  = []byte{0xfe, 0xff, 0xff, 0xff}
)

// a2sQuery is A2S_INFO's request after the header.
const a2sQuery = "TSource Engine Query\x00"

// A2S message types.
const (
	a2sChallenge  = 0x41 // S2C_CHALLENGE
	a2sInfo       = 0x49 // Source A2S_INFO response
	a2sGoldSource = 0x6d // obsolete GoldSource response
	a2sShipAppID  = 2400 // The Ship adds three bytes before the version
)

// a2sMaxChallenges bounds how many challenges we follow before deciding
// the server is not answering the query.
const a2sMaxChallenges = 3

// encodeA2SRequest is the A2S_INFO request, with the challenge appended
// when the server sent one.
func encodeA2SRequest(challenge []byte) []byte {
	b := append(append([]byte{}, a2sSingle...), a2sQuery...)
	return append(b, challenge...)
}

// decodeA2SChallenge reports whether b is an S2C_CHALLENGE and returns
// its challenge.
func decodeA2SChallenge(b []byte) ([]byte, bool) {
	if len(b) != 9 || !bytes.HasPrefix(b, a2sSingle) || b[4] != a2sChallenge {
		return nil, false
	}
	return b[5:9], true
}

// decodeA2SInfo reads an A2S_INFO response.
func decodeA2SInfo(b []byte) (Info, error) {
	if bytes.HasPrefix(b, a2sSplit) {
		return Info{}, badAnswer("A2S answer is split over several packets, which this probe does not reassemble")
	}
	if len(b) < 5 || !bytes.HasPrefix(b, a2sSingle) {
		return Info{}, badAnswer("A2S answer lacks the FF FF FF FF header")
	}
	r := &a2sReader{b: b[5:]}
	switch b[4] {
	case a2sInfo:
		return r.sourceInfo()
	case a2sGoldSource:
		return r.goldSourceInfo()
	}
	return Info{}, badAnswer("A2S answer type 0x%02x, want 0x49 (info)", b[4])
}

// sourceInfo reads the fields of a Source 0x49 response; those after max
// players are optional, as old servers stop early.
func (r *a2sReader) sourceInfo() (Info, error) {
	var info Info
	r.byte() // protocol
	info.Name, info.Map = r.string(), r.string()
	r.string() // folder
	game := r.string()
	appID := r.short()
	info.Players, info.MaxPlayers = int(r.byte()), int(r.byte())
	if r.err != nil {
		return Info{}, badAnswer("A2S info is truncated or malformed")
	}
	info.Version = game
	r.skip(5) // bots, server type, environment, visibility, VAC
	if appID == a2sShipAppID {
		r.skip(3) // mode, witnesses, duration
	}
	if v := r.string(); r.err == nil && v != "" {
		info.Version = game + " " + v
	}
	return info, nil
}

// goldSourceInfo reads the obsolete GoldSource 0x6D response: address,
// name, map, folder, game, players, max players, ...
func (r *a2sReader) goldSourceInfo() (Info, error) {
	var info Info
	r.string() // address
	info.Name, info.Map = r.string(), r.string()
	r.string() // folder
	info.Version = r.string()
	info.Players, info.MaxPlayers = int(r.byte()), int(r.byte())
	if r.err != nil {
		return Info{}, badAnswer("A2S GoldSource info is truncated or malformed")
	}
	return info, nil
}

// a2sReader reads A2S fields; the first short read sets err and every
// later read returns zero.
type a2sReader struct {
	b   []byte
	err error
}

// byte reads one byte.
func (r *a2sReader) byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// short reads a little-endian 16-bit integer.
func (r *a2sReader) short() uint16 {
	if r.err != nil || len(r.b) < 2 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

// string reads a NUL-terminated string.
func (r *a2sReader) string() string {
	i := bytes.IndexByte(r.b, 0)
	if r.err != nil || i < 0 {
		r.fail()
		return ""
	}
	s := string(r.b[:i])
	r.b = r.b[i+1:]
	return s
}

// skip discards n bytes.
func (r *a2sReader) skip(n int) {
	if r.err != nil || len(r.b) < n {
		r.fail()
		return
	}
	r.b = r.b[n:]
}

// fail marks the message short.
func (r *a2sReader) fail() { r.err = errA2SShort }

// errA2SShort is what a2sReader records; decodeA2SInfo turns it into an
// ErrBadAnswer with context.
var errA2SShort = badAnswer("A2S message ends early")

// probeA2S sends A2S_INFO and, when the server answers with a challenge,
// sends it again carrying the challenge, as servers updated since 2020
// require.
func probeA2S(ctx context.Context, addr netip.AddrPort, d Dialer) (Info, time.Duration, error) {
	conn, closeConn, err := dial(ctx, d, "udp", addr)
	if err != nil {
		return Info{}, 0, err
	}
	defer closeConn()
	req := encodeA2SRequest(nil)
	for range a2sMaxChallenges {
		answer, latency, err := exchangeUDP(ctx, conn, req)
		if err != nil {
			return Info{}, 0, err
		}
		if challenge, ok := decodeA2SChallenge(answer); ok {
			req = encodeA2SRequest(challenge)
			continue
		}
		info, err := decodeA2SInfo(answer)
		if err != nil {
			return Info{}, 0, ioError("reading the A2S_INFO answer", err)
		}
		return info, latency, nil
	}
	return Info{}, 0, badAnswer("the server answered %d challenges with another challenge", a2sMaxChallenges)
}
