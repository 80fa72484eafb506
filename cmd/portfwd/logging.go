package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/portfwd/portfwd/forward"
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

// logObserver logs what the reconcile loop does: one line a pass.
type logObserver struct{ log *slog.Logger }

var _ forward.Observer = logObserver{}

// Reconciled implements forward.Observer. The line is INFO when all went
// well, WARN when some rules failed, ERROR when the pass failed as a whole.
func (o logObserver) Reconciled(r forward.ReconcileReport) {
	attrs := []slog.Attr{
		slog.String("reason", r.Reason.String()),
		slog.String("backend", r.Backend),
		slog.Int("made", r.Made),
		slog.Int("failed", r.Failed),
		slog.Duration("duration", r.Duration.Round(time.Millisecond)),
	}
	level := slog.LevelInfo
	if errs := ruleErrors(r.Rules); len(errs) > 0 {
		level = slog.LevelWarn
		attrs = append(attrs, slog.Attr{Key: "errors", Value: slog.GroupValue(errs...)})
	}
	if r.Failed > 0 {
		level = slog.LevelWarn
	}
	if r.Err != nil {
		level = slog.LevelError
		attrs = append(attrs, slog.String("err", r.Err.Error()))
	}
	o.log.LogAttrs(context.Background(), level, "reconciled", attrs...)
}

// ruleErrors is each rule that is not ok, keyed by rule, with why.
func ruleErrors(rules []forward.RuleState) []slog.Attr {
	var errs []slog.Attr
	for _, rs := range rules {
		if rs.State == forward.RuleOK {
			continue
		}
		msg := rs.Error
		if msg == "" {
			msg = rs.State.String()
		}
		errs = append(errs, slog.String(rs.Rule, msg))
	}
	return errs
}

// GatewayUnreachable implements forward.Observer.
func (o logObserver) GatewayUnreachable(err error, retryIn time.Duration) {
	o.log.Warn("gateway unreachable", "err", err.Error(), "retry_in", retryIn.Round(time.Second/10))
}

// multi fans every event out to each observer, in order.
type multi []forward.Observer

// multiObserver combines observers (nil ones are skipped), e.g. the
// logger and the metrics.
func multiObserver(obs ...forward.Observer) forward.Observer {
	var m multi
	for _, o := range obs {
		if o != nil {
			m = append(m, o)
		}
	}
	switch len(m) {
	case 0:
		return forward.NopObserver{}
	case 1:
		return m[0]
	}
	return m
}

// Reconciled implements forward.Observer.
func (m multi) Reconciled(r forward.ReconcileReport) {
	for _, o := range m {
		o.Reconciled(r)
	}
}

// GatewayUnreachable implements forward.Observer.
func (m multi) GatewayUnreachable(err error, retryIn time.Duration) {
	for _, o := range m {
		o.GatewayUnreachable(err, retryIn)
	}
}
