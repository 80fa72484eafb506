package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/portfwd/portfwd/forward"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], newFactory(systemStreams()))
	stop()
	os.Exit(code)
}

// run executes one command line with f and returns the exit code.
func run(ctx context.Context, args []string, f *factory) int {
	root := newCmdRoot(f)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	code := exitCodeOf(err)
	if ctx.Err() != nil {
		code, err = exitInterrupted, interrupted(err)
	}
	if err != nil && !isSilent(err) {
		// Errors quote gateways and servers: printable, but for the line
		// breaks of a config's list of problems.
		fmt.Fprintln(f.IO.ErrOut, "portfwd:", forward.PrintableLines(err.Error()))
		f.out.errorDocument(err, code)
	}
	return code
}
