package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestExitCodeOf(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{errors.New("boom"), exitError},
		{withCode(exitPending, nil), exitPending},
		{fmt.Errorf("wrapped: %w", withCode(exitPartial, errors.New("2 failed"))), exitPartial},
		{fmt.Errorf("discovering: %w", context.Canceled), exitInterrupted},
	}
	for _, tt := range tests {
		if got := exitCodeOf(tt.err); got != tt.want {
			t.Errorf("exitCodeOf(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestParseLease(t *testing.T) {
	good := map[string]time.Duration{"0": 0, "3600": time.Hour, "1h": time.Hour, "90m": 90 * time.Minute, "0s": 0}
	for in, want := range good {
		if got, err := parseLease(in); err != nil || got != want {
			t.Errorf("parseLease(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"one hour", "-1h", "1 h", ""} {
		if _, err := parseLease(in); err == nil {
			t.Errorf("parseLease(%q) succeeded, want an error", in)
		}
	}
}
