package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/portfwd/portfwd/internal/lab"
)

// usageHead and usageTail frame the up command's flags, which usage
// lists from upFlags so that a new lab variant cannot be left out.
const usageHead = `usage: portfwd-lab [-state FILE] COMMAND [ARGS]

commands:
  up [FLAGS]                         build the lab, print it as KEY=VALUE lines
`

const usageTail = `  down                               tear the lab down
  reboot                             reboot the router (mappings are lost)
  env                                print the lab as KEY=VALUE lines
  exec lan|wan|router -- CMD ARGS    run CMD in a lab namespace; SIGINT, SIGTERM
                                     and SIGHUP are passed on to it
  listen tcp|udp|minecraft PORT [-greeting S]
                                     serve a greeting (tcp), an echo (udp), or a
                                     Minecraft status with S as its MOTD
  send tcp|udp HOST:PORT [-m MSG]    connect, print the reply; exit 1 after 3 s
  sweep                              delete the labs whose owner is gone: a killed
                                     test's, or one whose shell (that ran up) ended;
                                     running tests' labs stay
  help                               this text

-state FILE: the lab state file (default .lab/env, or $PORTFWD_LAB_STATE)
`

// usage is the whole help text.
func usage() string {
	var b strings.Builder
	b.WriteString(usageHead)
	upFlags(&lab.Options{}, new(bool)).VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(&b, "      -%-18s %s\n", f.Name, f.Usage)
	})
	b.WriteString(usageTail)
	return b.String()
}

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
	fs.SetOutput(io.Discard) // exitCode reports the error, with the usage
	state := fs.String("state", defaultState(), "lab state file ($PORTFWD_LAB_STATE)")
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		err = fmt.Errorf("%w: %w", err, errUsage)
	}
	if err == nil && fs.NArg() == 0 {
		err = errUsage
	}
	if err == nil {
		c := &cli{ctx: ctx, state: *state, stdout: stdout, stderr: stderr}
		err = c.dispatch(fs.Arg(0), fs.Args()[1:])
	}
	return exitCode(err, stdout, stderr)
}

// exitCode reports err and returns the exit status: 0 for help (the usage
// on stdout), 2 for a usage error (the usage on stderr), a child's status
// for exec, else 1.
func exitCode(err error, stdout, stderr io.Writer) int {
	var exit exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage())
		return 0
	case errors.As(err, &exit):
		return int(exit)
	case errors.Is(err, errUsage):
		if err != errUsage {
			fmt.Fprintf(stderr, "portfwd-lab: %s\n", strings.TrimSuffix(err.Error(), ": "+errUsage.Error()))
		}
		fmt.Fprint(stderr, usage())
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
	case "help", "-h", "--help":
		return flag.ErrHelp
	}
	return fmt.Errorf("unknown command %q: %w", cmd, errUsage)
}
