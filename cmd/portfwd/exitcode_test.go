package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
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
