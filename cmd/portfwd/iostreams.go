package main

import (
	"io"
	"os"
)

// IOStreams is where a command reads and writes. Tests hand in buffers, so
// commands never touch os.Stdout directly and can run in parallel.
type IOStreams struct {
	Out    io.Writer // results: tables or JSON
	ErrOut io.Writer // diagnostics, warnings and progress
	// Terminal is true when Out is a terminal: tables are aligned for
	// people; otherwise they are tab-separated for scripts.
	Terminal bool
}

// systemStreams are the process's own stdout and stderr.
func systemStreams() IOStreams {
	fi, err := os.Stdout.Stat()
	return IOStreams{Out: os.Stdout, ErrOut: os.Stderr,
		Terminal: err == nil && fi.Mode()&os.ModeCharDevice != 0}
}
