package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: portfwd-lab [-state FILE] COMMAND [ARGS]

commands:
  up [-igdv1] [-cgnat] [-insecure] [-iptables]
                                     build the lab, print it as KEY=VALUE lines
                                     (-iptables: no miniupnpd, run portfwd on
                                     the router with backend iptables)
  down                               tear the lab down
  reboot                             reboot the router (mappings are lost)
  env                                print the lab as KEY=VALUE lines
  exec lan|wan|router -- CMD ARGS    run CMD in a lab namespace
  listen tcp|udp|minecraft PORT [-greeting S]
                                     serve a greeting (tcp), an echo (udp), or a
                                     Minecraft status with S as its MOTD
  send tcp|udp HOST:PORT [-m MSG]    connect, print the reply; exit 1 after 3 s
  sweep                              delete every lab on this machine
`

// errUsage makes main exit 2, as for flag errors.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("portfwd-lab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	state := fs.String("state", defaultState(), "lab state file ($PORTFWD_LAB_STATE)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	c := &cli{ctx: ctx, state: *state, stdout: stdout, stderr: stderr}
	err := c.dispatch(fs.Arg(0), fs.Args()[1:])
	var exit exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return int(exit)
	case errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stderr, usage)
		return 2
	}
	fmt.Fprintf(stderr, "portfwd-lab: %v\n", err)
	return 1
}

func defaultState() string {
	if s := os.Getenv("PORTFWD_LAB_STATE"); s != "" {
		return s
	}
	return ".lab/env"
}

// exitError passes a child's exit status through `exec`.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

type cli struct {
	ctx            context.Context
	state          string
	stdout, stderr io.Writer
}

func (c *cli) dispatch(cmd string, args []string) error {
	switch cmd {
	case "up":
		return c.up(args)
	case "down":
		return c.down()
	case "reboot":
		return c.reboot()
	case "env":
		return c.env()
	case "exec":
		return c.exec(args)
	case "listen":
		return c.listen(args)
	case "send":
		return c.send(args)
	case "sweep":
		return c.sweep()
	}
	return fmt.Errorf("unknown command %q: %w", cmd, errUsage)
}
