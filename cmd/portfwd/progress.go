package main

import (
	"fmt"
	"io"

	"github.com/portfwd/portfwd/forward"
)

// progressLine is an apply's progress for a person watching: "12/50
// changes done…" on stderr, one line rewritten in place as each change
// ends, and cleared when the apply ends, before anything else is printed.
// It exists only where someone watches: stderr is a terminal and the
// output is not JSON; pipes, files and the daemon's log never see it.
type progressLine struct {
	w     io.Writer
	shown bool
}

// applyProgress is the progress line of an apply, or nil when no person
// watches stderr.
func (p *printer) applyProgress() *progressLine {
	if !p.io.ErrTerminal || p.json {
		return nil
	}
	return &progressLine{w: p.io.ErrOut}
}

// eraseLine moves to the start of the line and erases it (ECMA-48 EL).
const eraseLine = "\r\x1b[K"

// show rewrites the line with done of total.
func (l *progressLine) show(done, total int) {
	fmt.Fprintf(l.w, "%s%d/%d changes done…", eraseLine, done, total)
	l.shown = true
}

// clear erases the line, if it was ever shown.
func (l *progressLine) clear() {
	if l != nil && l.shown {
		fmt.Fprint(l.w, eraseLine)
		l.shown = false
	}
}

// callback is the forward.Progress that shows on l; nil for a nil l.
func (l *progressLine) callback() forward.Progress {
	if l == nil {
		return nil
	}
	return l.show
}
