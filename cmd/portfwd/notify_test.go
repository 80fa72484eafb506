package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// listenNotify stands in for systemd: a unixgram socket at name, named in
// $NOTIFY_SOCKET.
func listenNotify(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	return l
}

func readNotify(t *testing.T, l *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	_ = l.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := l.Read(buf)
	if err != nil {
		t.Fatalf("systemd got nothing: %v", err)
	}
	return string(buf[:n])
}

func TestNotifyHelpers(t *testing.T) {
	l := listenNotify(t, filepath.Join(t.TempDir(), "notify"))
	for _, tc := range []struct {
		send func() (bool, error)
		want string
	}{
		{sdReady, "READY=1"},
		{func() (bool, error) { return sdStatus("3 forwards ok\n1 conflict") }, "STATUS=3 forwards ok 1 conflict"},
		{sdStopping, "STOPPING=1"},
	} {
		sent, err := tc.send()
		if !sent || err != nil {
			t.Fatalf("%s: sent %v, err %v", tc.want, sent, err)
		}
		if got := readNotify(t, l); got != tc.want {
			t.Errorf("systemd got %q, want %q", got, tc.want)
		}
	}
}

func TestNotifyAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("@portfwd-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	l := listenNotify(t, name)
	if sent, err := sdReady(); !sent || err != nil {
		t.Fatalf("sent %v, err %v", sent, err)
	}
	if got := readNotify(t, l); got != "READY=1" {
		t.Errorf("systemd got %q", got)
	}
	if _, err := os.Lstat(name); err == nil {
		t.Errorf("%s is a file, not an abstract socket", name)
	}
}

func TestNotifyUnset(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := sdReady(); sent || err != nil {
		t.Errorf("without NOTIFY_SOCKET: sent %v, err %v; want false, nil", sent, err)
	}
}

func TestNotifyNoListener(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone"))
	if sent, err := sdReady(); sent || err == nil {
		t.Errorf("to a missing socket: sent %v, err %v; want false and an error", sent, err)
	}
}
