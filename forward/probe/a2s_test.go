package probe

import (
	"bytes"
	"errors"
	"testing"
)

// Byte layouts below are written out by hand from the Valve Developer
// Community "Server queries" (A2S_INFO, S2C_CHALLENGE).

func TestEncodeA2SRequest(t *testing.T) {
	query := []byte{
		0xff, 0xff, 0xff, 0xff, 0x54, // header, 'T'
		'S', 'o', 'u', 'r', 'c', 'e', ' ', 'E', 'n', 'g', 'i', 'n', 'e', ' ',
		'Q', 'u', 'e', 'r', 'y', 0x00,
	}
	if got := encodeA2SRequest(nil); !bytes.Equal(got, query) {
		t.Errorf("request:\n got % x\nwant % x", got, query)
	}
	withChallenge := append(append([]byte{}, query...), 0x0a, 0x0b, 0x0c, 0x0d)
	if got := encodeA2SRequest([]byte{0x0a, 0x0b, 0x0c, 0x0d}); !bytes.Equal(got, withChallenge) {
		t.Errorf("request with challenge:\n got % x\nwant % x", got, withChallenge)
	}
}

func TestDecodeA2SChallenge(t *testing.T) {
	ch, ok := decodeA2SChallenge([]byte{0xff, 0xff, 0xff, 0xff, 0x41, 0x01, 0x02, 0x03, 0x04})
	if !ok || !bytes.Equal(ch, []byte{1, 2, 3, 4}) {
		t.Errorf("challenge: got % x, %v", ch, ok)
	}
	for name, in := range map[string][]byte{
		"short":      {0xff, 0xff, 0xff, 0xff, 0x41, 0x01},
		"long":       {0xff, 0xff, 0xff, 0xff, 0x41, 1, 2, 3, 4, 5},
		"not 0x41":   {0xff, 0xff, 0xff, 0xff, 0x49, 1, 2, 3, 4},
		"bad header": {0xfe, 0xff, 0xff, 0xff, 0x41, 1, 2, 3, 4},
	} {
		if _, ok := decodeA2SChallenge(in); ok {
			t.Errorf("%s: % x taken for a challenge", name, in)
		}
	}
}

// sourceInfo is a Source 0x49 answer by hand: protocol 17, name "Srv",
// map "de_dust2", folder "csgo", game "CS", app id 730 (DA 02), 5 of 16
// players, no bots, dedicated, Linux, public, VAC, version "1.38", EDF 0.
var sourceInfo = []byte{
	0xff, 0xff, 0xff, 0xff, 0x49, 0x11,
	'S', 'r', 'v', 0,
	'd', 'e', '_', 'd', 'u', 's', 't', '2', 0,
	'c', 's', 'g', 'o', 0,
	'C', 'S', 0,
	0xda, 0x02,
	5, 16, 0, 'd', 'l', 0, 1,
	'1', '.', '3', '8', 0,
	0x00,
}

func TestDecodeA2SInfo(t *testing.T) {
	ship := []byte{0xff, 0xff, 0xff, 0xff, 0x49, 0x07, 'S', 0, 'M', 0, 'f', 0, 'G', 0,
		0x60, 0x09, // app id 2400: The Ship
		1, 2, 0, 'd', 'w', 0, 0,
		0, 1, 3, // mode, witnesses, duration
		'v', '9', 0}
	gold := []byte{0xff, 0xff, 0xff, 0xff, 0x6d, '1', '.', '2', ':', '3', 0,
		'H', 'L', 0, 'c', 'r', 'o', 's', 's', 'f', 'i', 'r', 'e', 0, 'v', 'a', 'l', 'v', 'e', 0,
		'H', 'a', 'l', 'f', '-', 'L', 'i', 'f', 'e', 0, 3, 8, 47}
	for _, tc := range []struct {
		name string
		in   []byte
		want Info
	}{
		{"source", sourceInfo, Info{Name: "Srv", Map: "de_dust2", Version: "CS 1.38", Players: 5, MaxPlayers: 16}},
		{"stops after max players", sourceInfo[:37], Info{Name: "Srv", Map: "de_dust2", Version: "CS", Players: 5, MaxPlayers: 16}},
		{"the ship", ship, Info{Name: "S", Map: "M", Version: "G v9", Players: 1, MaxPlayers: 2}},
		{"goldsource", gold, Info{Name: "HL", Map: "crossfire", Version: "Half-Life", Players: 3, MaxPlayers: 8}},
	} {
		got, err := decodeA2SInfo(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

func TestDecodeA2SInfoMalformed(t *testing.T) {
	for name, in := range map[string][]byte{
		"empty":             nil,
		"header only":       {0xff, 0xff, 0xff, 0xff},
		"split packet":      {0xfe, 0xff, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0xe0, 0x04},
		"wrong header":      append([]byte{0x00}, sourceInfo[1:]...),
		"unknown type":      {0xff, 0xff, 0xff, 0xff, 0x45, 0x00},
		"name unterminated": sourceInfo[:9],
		"no player counts":  sourceInfo[:29],
		"one player count":  sourceInfo[:30],
		"our own request":   encodeA2SRequest(nil),
	} {
		if _, err := decodeA2SInfo(in); !errors.Is(err, ErrBadAnswer) {
			t.Errorf("%s: got %v, want ErrBadAnswer", name, err)
		}
	}
}
