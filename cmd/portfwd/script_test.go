package main

import (
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// The CLI scripts in testdata/script run the real command line (flags,
// exit codes, output) without a gateway: every case there must fail or
// finish before one is needed. The lab tests cover the rest.

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"portfwd": main})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/script"})
}
