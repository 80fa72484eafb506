package lab

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// SlowRouterLogLine is the Options.LogLineCost of a slow router. miniupnpd
// 2.3.1 logs about ten lines per mapping in its table on every
// AddPortMapping (its pinhole scan: "rule with label … is not a IGD
// pinhole"), so each add costs more as the table grows, as on a small
// router whose every log line goes to a slow console or flash. With 2 ms a
// line, 50 `upnpc -a` take ~30 s and the 50th ~1 s, about LAB.md's
// figures for a slow router (26 s, from the glibc console fallback the
// lab once had; see syslog.go), and 50 adds take well over the 15 s that
// once bounded a whole portfwd run.
const SlowRouterLogLine = 2 * time.Millisecond

// pacedPipeSize is the pipe between miniupnpd and its paced log: one page,
// the smallest a pipe can be, so that miniupnpd waits for its log almost
// at once.
const pacedPipeSize = 4096

// logSink is where miniupnpd's stdout and stderr go: logf, or with
// Options.LogLineCost a pipe that pacedLog copies into the log file at
// that cost per line. started closes this process's end of the pipe once
// miniupnpd has started (or failed to). Lines wait in the pipe a moment
// before they reach the file, so MiniupnpdLog may lag behind miniupnpd.
func (l *Lab) logSink(logf *os.File) (sink *os.File, started func(), err error) {
	if l.opts.LogLineCost <= 0 {
		return logf, func() {}, nil
	}
	if l.opts.Detached {
		return nil, nil, errors.New("a lab with LogLineCost cannot be detached: this process paces miniupnpd's log")
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("making miniupnpd's log pipe: %w", err)
	}
	if _, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, pacedPipeSize); err != nil {
		r.Close()
		w.Close()
		return nil, nil, fmt.Errorf("shrinking miniupnpd's log pipe: %w", err)
	}
	out, err := os.OpenFile(l.path(logFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		r.Close()
		w.Close()
		return nil, nil, fmt.Errorf("opening miniupnpd log: %w", err)
	}
	go pacedLog(r, out, l.opts.LogLineCost)
	return w, func() { w.Close() }, nil
}

// pacedLog copies lines from r to out, each at least cost after the one
// before, until r ends (miniupnpd exited). A writer faster than that fills
// the pipe and waits, as on a slow console.
func pacedLog(r io.ReadCloser, out io.WriteCloser, cost time.Duration) {
	defer r.Close()
	defer out.Close()
	br := bufio.NewReaderSize(r, 256) // small: what it reads ahead is slack
	next := time.Now()
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			_, _ = out.Write(line)
		}
		if err != nil {
			return
		}
		if now := time.Now(); next.Before(now) {
			next = now // no credit for time the log was idle
		}
		next = next.Add(cost)
		time.Sleep(time.Until(next))
	}
}
