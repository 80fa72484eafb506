package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portfwd/portfwd/internal/lab"
)

// binary is the portfwd executable the lab tests run inside the LAN
// namespace, built on first use (unit and script tests do not need it).
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "portfwd-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "portfwd")
		if out, err := exec.Command("go", "build", "-o", buildPath, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building portfwd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// cli is one portfwd run in a lab namespace.
type cli struct {
	stdout, stderr string
	code           int
}

func portfwd(t *testing.T, l *lab.Lab, args ...string) cli {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := l.Command(lab.LAN, binary(t), args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := cli{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running portfwd %v: %v", args, err)
	}
	t.Logf("portfwd %s → exit %d\n%s%s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
	return res
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decoding JSON: %v\n%s", err, s)
	}
	return v
}

func writeConfig(t testing.TB, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "portfwd.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// listenTCP serves a greeting on port in the LAN namespace, like a game
// server would answer.
func listenTCP(t *testing.T, l *lab.Lab, port int) {
	t.Helper()
	var ln net.Listener
	if err := l.Do(lab.LAN, func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatalf("listening in the LAN namespace: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "hello from lan tcp/%d\n", port)
			c.Close()
		}
	}()
}

// listenUDP echoes each datagram on port in the LAN namespace.
func listenUDP(t *testing.T, l *lab.Lab, port int) {
	t.Helper()
	var pc net.PacketConn
	if err := l.Do(lab.LAN, func() (err error) {
		pc, err = net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatalf("listening in the LAN namespace: %v", err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte("lan got: "), buf[:n]...), from)
		}
	}()
}

// fromWAN connects from the internet side to the router's WAN address and
// returns what the LAN host answered.
func fromWAN(l *lab.Lab, network string, port int) (string, error) {
	addr := netip.AddrPortFrom(l.RouterWAN, uint16(port)).String()
	var reply string
	err := l.Do(lab.WAN, func() error {
		c, err := net.DialTimeout(network, addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if network == "udp" {
			if _, err := c.Write([]byte("ping")); err != nil {
				return err
			}
		}
		buf := make([]byte, 200)
		n, err := c.Read(buf)
		reply = strings.TrimSpace(string(buf[:n]))
		return err
	})
	return reply, err
}

// upnpc runs miniupnpc's client in the LAN namespace against the lab's
// router: the "other program" whose mappings portfwd must leave alone.
func upnpc(t *testing.T, l *lab.Lab, args ...string) string {
	t.Helper()
	out, err := l.Command(lab.LAN, "upnpc", append([]string{"-u", l.RootDescURL}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("upnpc %v: %v\n%s", args, err, out)
	}
	return string(out)
}
