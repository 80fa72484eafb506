package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// The exit-code table. README.md repeats it; keep both in step.
const (
	exitOK          = 0   // everything done, or nothing to do
	exitError       = 1   // bad config, no gateway, bad flags: nothing was changed
	exitPending     = 2   // plan --detailed-exitcode: the gateway differs from the config
	exitPartial     = 3   // apply/down: some changes failed, the others were made
	exitUnreachable = 4   // a rule is unreachable (check)
	exitNotChecked  = 5   // check: the probe server (--via) could not be asked, so nothing was checked from outside
	exitInterrupted = 130 // interrupted (Ctrl-C, SIGTERM)
)

// codeError carries an exit code through cobra to main. A nil err means
// the command already told the user what happened.
type codeError struct {
	code int
	err  error
}

func (e *codeError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit code %d", e.code)
	}
	return e.err.Error()
}

func (e *codeError) Unwrap() error { return e.err }

// isSilent: a codeError without a message means the command has already
// reported everything (for example a plan with pending changes).
func isSilent(err error) bool {
	ce, ok := err.(*codeError)
	return ok && ce.err == nil
}

// withCode marks err with an exit code.
func withCode(code int, err error) error { return &codeError{code: code, err: err} }

// exitCodeOf maps an error returned by a command to the process exit code.
func exitCodeOf(err error) int {
	var ce *codeError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &ce):
		return ce.code
	}
	return exitError
}

// interrupted is the error of a run stopped by Ctrl-C or SIGTERM, made
// from err, what the command returned: what it was doing, then
// "interrupted" — never a timeout, "no gateway found" or "no answer",
// which is what an interrupted wait looks like from inside. An error of
// its own (a bad config) is kept, marked interrupted.
func interrupted(err error) error {
	if err == nil || isSilent(err) {
		return withCode(exitInterrupted, errors.New("interrupted"))
	}
	if s, ok := strings.CutSuffix(err.Error(), context.Canceled.Error()); ok {
		return withCode(exitInterrupted, errors.New(s+"interrupted"))
	}
	return withCode(exitInterrupted, fmt.Errorf("%w (interrupted)", err)) // it failed on its own: keep why
}
