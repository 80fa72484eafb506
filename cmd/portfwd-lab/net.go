package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"
	"time"
)

// sendTimeout is how long send waits for a connection and a reply.
const sendTimeout = 3 * time.Second

func (c *cli) listen(args []string) error {
	fs := flag.NewFlagSet("listen", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	greeting := fs.String("greeting", "hello from lan", "what the server says")
	proto, port, err := twoArgs(fs, args)
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("", port)
	switch proto {
	case "tcp":
		return c.serveTCP(addr, *greeting)
	case "udp":
		return c.serveUDP(addr, *greeting)
	}
	return fmt.Errorf("protocol %q: want tcp or udp: %w", proto, errUsage)
}

// serveTCP writes one greeting line, naming the peer so the demo shows
// whether the router rewrote the source, to each connection.
func (c *cli) serveTCP(addr, greeting string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Fprintf(c.stderr, "listening on tcp %s\n", ln.Addr())
	go func() { <-c.ctx.Done(); ln.Close() }()
	for {
		conn, err := ln.Accept()
		if err != nil {
			return stoppedBy(c.ctx, err)
		}
		fmt.Fprintf(c.stderr, "connection from %s\n", conn.RemoteAddr())
		fmt.Fprintf(conn, "%s (you are %s)\n", greeting, conn.RemoteAddr())
		conn.Close()
	}
}

// serveUDP answers each datagram with its content prefixed by the greeting.
func (c *cli) serveUDP(addr, greeting string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	defer pc.Close()
	fmt.Fprintf(c.stderr, "listening on udp %s\n", pc.LocalAddr())
	go func() { <-c.ctx.Done(); pc.Close() }()
	buf := make([]byte, 64*1024)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return stoppedBy(c.ctx, err)
		}
		fmt.Fprintf(c.stderr, "datagram from %s\n", from)
		reply := fmt.Sprintf("%s: %s", greeting, buf[:n])
		_, _ = pc.WriteTo([]byte(reply), from)
	}
}

// stoppedBy turns the error of a server closed by a signal (portfwd-lab
// down kills everything in the lab) into a clean exit.
func stoppedBy(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (c *cli) send(args []string) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	msg := fs.String("m", "ping", "datagram to send (udp)")
	proto, addr, err := twoArgs(fs, args)
	if err != nil {
		return err
	}
	if proto != "tcp" && proto != "udp" {
		return fmt.Errorf("protocol %q: want tcp or udp: %w", proto, errUsage)
	}
	conn, err := net.DialTimeout(proto, addr, sendTimeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(sendTimeout))
	if proto == "udp" {
		if _, err := conn.Write([]byte(*msg)); err != nil {
			return err
		}
	}
	return c.printReply(conn, proto, addr)
}

func (c *cli) printReply(conn net.Conn, proto, addr string) error {
	var reply string
	var err error
	if proto == "tcp" {
		reply, err = bufio.NewReader(conn).ReadString('\n')
	} else {
		buf := make([]byte, 64*1024)
		var n int
		n, err = conn.Read(buf)
		reply = string(buf[:n])
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("no reply from %s %s within %v", proto, addr, sendTimeout)
	}
	if err != nil && reply == "" {
		return fmt.Errorf("reading from %s %s: %w", proto, addr, err)
	}
	fmt.Fprintln(c.stdout, strings.TrimRight(reply, "\n"))
	return nil
}

// twoArgs parses flags that may come before or after the two positional
// arguments ("listen tcp 8080 -greeting hi" and "listen -greeting hi tcp 8080").
func twoArgs(fs *flag.FlagSet, args []string) (string, string, error) {
	if err := fs.Parse(args); err != nil {
		return "", "", err
	}
	pos := fs.Args()
	if len(pos) >= 2 {
		if err := fs.Parse(pos[2:]); err != nil {
			return "", "", err
		}
		if fs.NArg() == 0 {
			return pos[0], pos[1], nil
		}
	}
	return "", "", fmt.Errorf("%s needs tcp|udp and an address: %w", fs.Name(), errUsage)
}
