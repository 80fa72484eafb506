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
	testscript.Run(t, testscript.Params{Dir: "testdata/script", Setup: func(env *testscript.Env) error {
		// Keep state and cache inside the script's work dir, even as root.
		env.Setenv("PORTFWD_STATE_DIR", env.WorkDir+"/state")
		env.Setenv("XDG_CACHE_HOME", env.WorkDir+"/cache")
		return nil
	}})
}
