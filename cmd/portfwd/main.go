package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], systemStreams())
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit code.
func run(ctx context.Context, args []string, io IOStreams) int {
	g := newGlobals(io)
	root := newRootCmd(g)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	code := exitCodeOf(err)
	if ctx.Err() != nil {
		code = exitInterrupted
	}
	if err != nil && !isSilent(err) {
		fmt.Fprintln(io.ErrOut, "portfwd:", err)
		if g.json() && !g.wroteJSON {
			g.writeError(err, code)
		}
	}
	return code
}

// isSilent: a codeError without a message means the command has already
// reported everything (for example a plan with pending changes).
func isSilent(err error) bool {
	ce, ok := err.(*codeError)
	return ok && ce.err == nil
}
