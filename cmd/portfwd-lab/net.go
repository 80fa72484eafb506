package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/portfwd/portfwd/forward/probe/probetest"
	"github.com/portfwd/portfwd/internal/lab"
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
	case "minecraft":
		return c.serveMinecraft(addr, *greeting)
	}
	return fmt.Errorf("protocol %q: want tcp, udp or minecraft: %w", proto, errUsage)
}

// serveMinecraft answers the Minecraft Java server list ping with the
// greeting as its MOTD, as a real server would, until stopped.
func (c *cli) serveMinecraft(addr, motd string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "Minecraft status responder on tcp %s\n", ln.Addr())
	go func() { <-c.ctx.Done(); ln.Close() }()
	st := probetest.JavaStatus{Version: "1.21.4", Protocol: 769, Players: 2, MaxPlayers: 20, Description: motd}
	return stoppedBy(c.ctx, probetest.ServeMinecraftJava(ln, st))
}

// serveTCP greets each connection until the command is stopped.
func (c *cli) serveTCP(addr, greeting string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "listening on tcp %s\n", ln.Addr())
	go func() { <-c.ctx.Done(); ln.Close() }()
	return stoppedBy(c.ctx, lab.ServeTCP(ln, greeting, c.stderr))
}

// serveUDP echoes each datagram, prefixed by the greeting, until stopped.
func (c *cli) serveUDP(addr, greeting string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "listening on udp %s\n", pc.LocalAddr())
	go func() { <-c.ctx.Done(); pc.Close() }()
	return stoppedBy(c.ctx, lab.ServeUDP(pc, greeting, c.stderr))
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
	reply, err := lab.Exchange(proto, addr, *msg, sendTimeout)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, reply)
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
