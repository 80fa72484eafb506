package main

import (
	"fmt"
	"io"
	"log/slog"
)

// newLogger makes the daemon's logger for --log-format: text (key=value,
// for people and journald) or json (one object a line, for log shippers).
func newLogger(w io.Writer, format string) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{ReplaceAttr: readableDurations}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

// readableDurations writes durations as "1.5s" in both formats: the JSON
// handler would otherwise write nanoseconds, which nobody reads right.
func readableDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}
