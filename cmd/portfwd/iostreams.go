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
	// ErrTerminal is true when ErrOut is a terminal: a person watches,
	// so a long apply shows its progress there, on a line it rewrites.
	ErrTerminal bool
}

// systemStreams are the process's own stdout and stderr.
func systemStreams() IOStreams {
	return IOStreams{Out: os.Stdout, ErrOut: os.Stderr, Terminal: isTerminal(os.Stdout), ErrTerminal: isTerminal(os.Stderr)}
}

// isTerminal reports whether f is a terminal (a character device), not a
// pipe, a file or /dev/null's like.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
