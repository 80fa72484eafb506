package probetest

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// The expected bytes below are written out by hand from the protocol
// descriptions, so the responders are checked on their own and not only
// through the probes they serve.

func TestKick(t *testing.T) {
	want := []byte{0xff, 0x00, 0x05, 0x00, 'A', 0x00, 0xa7, 0x00, '1', 0x00, 0xa7, 0x00, '2'}
	if got := kick("A§1§2"); !bytes.Equal(got, want) {
		t.Errorf("kick:\n got % x\nwant % x", got, want)
	}
}

func TestBedrockPong(t *testing.T) {
	ping := []byte{0x01, 1, 2, 3, 4, 5, 6, 7, 8,
		0x00, 0xff, 0xff, 0x00, 0xfe, 0xfe, 0xfe, 0xfe, 0xfd, 0xfd, 0xfd, 0xfd, 0x12, 0x34, 0x56, 0x78,
		9, 9, 9, 9, 9, 9, 9, 9}
	st := BedrockStatus{MOTD: "m", Protocol: 1, Version: "v", Players: 2, MaxPlayers: 3, ServerGUID: 0x0a0b, SubMOTD: "w", GameMode: "Survival"}
	s := "MCPE;m;1;v;2;3;2571;w;Survival;1;19132;19133;"
	want := append([]byte{0x1c, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0x0a, 0x0b,
		0x00, 0xff, 0xff, 0x00, 0xfe, 0xfe, 0xfe, 0xfe, 0xfd, 0xfd, 0xfd, 0xfd, 0x12, 0x34, 0x56, 0x78,
		0x00, byte(len(s))}, s...)
	got, ok := bedrockPong(ping, st)
	if !ok || !bytes.Equal(got, want) {
		t.Errorf("pong:\n got % x\nwant % x", got, want)
	}
	ping[13] = 0
	if _, ok := bedrockPong(ping, st); ok {
		t.Error("answered a ping without the magic")
	}
}

func TestA2SAnswer(t *testing.T) {
	st := A2SInfo{Protocol: 17, Name: "N", Map: "M", Folder: "F", Game: "G", AppID: 730, Players: 1, MaxPlayers: 2, ServerType: 'd', Environment: 'l', VAC: 1, Version: "1.0"}
	info := []byte{0xff, 0xff, 0xff, 0xff, 0x49, 17, 'N', 0, 'M', 0, 'F', 0, 'G', 0, 0xda, 0x02,
		1, 2, 0, 'd', 'l', 0, 1, '1', '.', '0', 0, 0}
	ch := []byte{1, 2, 3, 4}
	challenge := []byte{0xff, 0xff, 0xff, 0xff, 0x41, 1, 2, 3, 4}
	req := []byte("\xff\xff\xff\xffTSource Engine Query\x00")
	for _, tc := range []struct {
		name      string
		req       []byte
		challenge bool
		want      []byte
	}{
		{"no challenge needed", req, false, info},
		{"challenge missing", req, true, challenge},
		{"challenge wrong", append(append([]byte{}, req...), 4, 3, 2, 1), true, challenge},
		{"challenge right", append(append([]byte{}, req...), ch...), true, info},
		{"not a query", []byte("\xff\xff\xff\xffV\x00\x00\x00\x00"), false, nil},
	} {
		got, ok := a2sAnswer(tc.req, st, tc.challenge, ch)
		if ok != (tc.want != nil) || !bytes.Equal(got, tc.want) {
			t.Errorf("%s:\n got % x\nwant % x", tc.name, got, tc.want)
		}
	}
}

func TestServeMinecraftJava(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- ServeMinecraftJava(l, JavaStatus{Version: "v", Players: 1, MaxPlayers: 2, Description: "d"})
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	// handshake (localhost:25565, protocol -1, next state 1), status request, ping 7
	_, _ = c.Write([]byte{0x13, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x09, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', 0x63, 0xdd, 0x01, 0x01, 0x00})
	r := bufio.NewReader(c)
	js := `{"description":"d","players":{"max":2,"online":1},"version":{"name":"v","protocol":0}}`
	want := append([]byte{byte(len(js) + 2), 0x00, byte(len(js))}, js...)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("status response: %v\n got %q\nwant %q", err, got, want)
	}
	pingPong := []byte{0x09, 0x01, 0, 0, 0, 0, 0, 0, 0, 7}
	_, _ = c.Write(pingPong)
	got = make([]byte, len(pingPong))
	if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, pingPong) {
		t.Fatalf("pong: %v: % x", err, got)
	}
	c.Close()
	l.Close()
	if err := <-done; err != nil {
		t.Errorf("ServeMinecraftJava returned %v after close", err)
	}
}

func TestServeReturnsOnClose(t *testing.T) {
	for name, serve := range map[string]func(net.PacketConn) error{
		"bedrock": func(pc net.PacketConn) error { return ServeBedrock(pc, BedrockStatus{}) },
		"a2s":     func(pc net.PacketConn) error { return ServeA2S(pc, A2SInfo{}, true) },
	} {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- serve(pc) }()
		pc.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: returned %v", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: still serving after close", name)
		}
	}
}
