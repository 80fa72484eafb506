package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portfwd/portfwd/internal/lab"
)

// TestUsageListsEveryVariant keeps `up`'s flags, and so the usage, in step
// with lab.Options: a new option is a flag of up, or listed here with why
// it is not.
func TestUsageListsEveryVariant(t *testing.T) {
	notFlags := map[string]string{
		"SecureMode":  "-insecure",
		"LogLineCost": "the slow router paces miniupnpd's log from the process that made the lab: tests only",
		"Detached":    "always on for portfwd-lab",
		"Log":         "portfwd-lab's stderr",
	}
	var opts lab.Options
	var insecure bool
	fs := upFlags(&opts, &insecure)
	typ := reflect.TypeOf(opts)
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() || notFlags[f.Name] != "" {
			continue
		}
		// Setting every flag must set this field.
		before := reflect.ValueOf(opts).Field(i).Interface()
		fs.VisitAll(func(fl *flag.Flag) { _ = fl.Value.Set("true") })
		if reflect.DeepEqual(before, reflect.ValueOf(opts).Field(i).Interface()) {
			t.Errorf("lab.Options.%s has no flag in portfwd-lab up (or add it to notFlags with the reason)", f.Name)
		}
		opts = lab.Options{}
	}
	u := usage()
	fs.VisitAll(func(fl *flag.Flag) {
		if !strings.Contains(u, "-"+fl.Name+" ") {
			t.Errorf("usage does not list up -%s", fl.Name)
		}
	})
	for _, want := range []string{"-no-upnp", "-no-natpmp", "-pcp-third-party", "sweep", "exec"} {
		if !strings.Contains(u, want) {
			t.Errorf("usage lacks %s", want)
		}
	}
}

func TestHelpAndUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args     []string
		code     int
		out, err string // text stdout and stderr must hold ("" : empty)
	}{
		{[]string{"--help"}, 0, "-pcp-third-party", ""},
		{[]string{"-h"}, 0, "usage: portfwd-lab", ""},
		{[]string{"help"}, 0, "usage: portfwd-lab", ""},
		{[]string{"up", "-help"}, 0, "-no-natpmp", ""},
		{nil, 2, "", "usage: portfwd-lab"},
		{[]string{"frob"}, 2, "", `unknown command "frob"`},
		{[]string{"up", "-bogus"}, 2, "", "flag provided but not defined: -bogus"},
		{[]string{"-bogus"}, 2, "", "usage: portfwd-lab"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tt.args, &out, &errb)
		if code != tt.code || !holds(out.String(), tt.out) || !holds(errb.String(), tt.err) {
			t.Errorf("portfwd-lab %s: exit %d, stdout %.60q, stderr %.60q; want exit %d, stdout with %q, stderr with %q",
				strings.Join(tt.args, " "), code, out.String(), errb.String(), tt.code, tt.out, tt.err)
		}
	}
}

// holds reports whether s holds want, or is empty when want is.
func holds(s, want string) bool {
	if want == "" {
		return s == ""
	}
	return strings.Contains(s, want)
}

// TestRunPassingSignals sends SIGINT to exec as a signal to portfwd-lab
// would arrive: the child gets it and ends by its own trap.
func TestRunPassingSignals(t *testing.T) {
	cmd := exec.Command("sh", "-c", `trap 'echo got INT; exit 7' INT; echo ready; while :; do sleep 0.05; done`)
	r, w := io.Pipe()
	cmd.Stdout = w
	sigs := make(chan os.Signal, 1)
	result := make(chan error, 1)
	go func() { result <- runPassingSignals(cmd, sigs); w.Close() }()
	// A hang detector, not a timing: a child that never got the signal
	// is killed, and the test fails below instead of hanging.
	defer time.AfterFunc(time.Minute, func() { _ = cmd.Process.Kill() }).Stop()
	lines := bufio.NewScanner(r)
	if !lines.Scan() || lines.Text() != "ready" {
		t.Fatalf("child said %q, want ready", lines.Text())
	}
	sigs <- syscall.SIGINT
	if !lines.Scan() || lines.Text() != "got INT" {
		t.Errorf("child said %q after SIGINT, want got INT", lines.Text())
	}
	var ee *exec.ExitError
	if err := <-result; !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Errorf("runPassingSignals = %v, want the child's exit status 7", err)
	}
}
