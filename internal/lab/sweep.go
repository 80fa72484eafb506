package lab

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Sweep deletes the labs on this machine whose owner process is gone: each
// such lab's "pfl-*" namespaces with all processes in them, and its "pfl-*"
// dirs in the temp dir. It is for cleaning up after a test binary was
// killed before its cleanups ran (or the shell that ran `portfwd-lab up`
// has ended); the labs of running tests, and of a shell still open, stay.
// A lab that recorded no owner (made by an older portfwd) is removed.
func Sweep(log io.Writer) error { return sweep(log, func(string) bool { return true }) }

// sweep is Sweep of the labs whose names only accepts.
func sweep(log io.Writer, only func(name string) bool) error {
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("listing namespaces: %w", err)
	}
	var namespaces []string
	for _, e := range entries {
		namespaces = append(namespaces, e.Name())
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pfl-*"))
	var errs []error
	for _, c := range sweepPlan(namespaces, dirs, procRoot) {
		if !only(c.name) {
			continue
		}
		if c.owner != nil {
			sweepLog(log, "keeping lab %s: process %d, which made it, is running", c.name, c.owner.PID)
			continue
		}
		sweepLog(log, "deleting lab %s (%s)", c.name, c.why)
		l := &Lab{Name: c.name}
		for _, h := range c.hosts {
			errs = append(errs, l.deleteNamespace(h))
		}
		for _, d := range c.dirs {
			errs = append(errs, os.RemoveAll(d))
		}
	}
	return errors.Join(errs...)
}

// sweepCandidate is one lab found on the machine.
type sweepCandidate struct {
	name  string   // "pfl-<6 hex>"
	hosts []Host   // its namespaces
	dirs  []string // its dirs
	owner *owner   // the running process it belongs to; nil: none, sweep it
	why   string   // why it is swept
}

// sweepPlan groups namespace names and dirs by lab and finds, under proc,
// which labs' owners still run. Names this package did not make are left
// out.
func sweepPlan(namespaces, dirs []string, proc string) []sweepCandidate {
	labs := map[string]*sweepCandidate{}
	get := func(name string) *sweepCandidate {
		if labs[name] == nil {
			labs[name] = &sweepCandidate{name: name, why: "no owner recorded"}
		}
		return labs[name]
	}
	for _, ns := range namespaces {
		if name, rest, ok := splitLabName(ns); ok {
			if h, err := ParseHost(rest); err == nil {
				c := get(name)
				c.hosts = append(c.hosts, h)
			}
		}
	}
	for _, d := range dirs {
		if name, _, ok := splitLabName(filepath.Base(d)); ok {
			c := get(name)
			c.dirs = append(c.dirs, d)
			c.checkOwner(d, proc)
		}
	}
	out := make([]sweepCandidate, 0, len(labs))
	for _, c := range labs {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b sweepCandidate) int { return strings.Compare(a.name, b.name) })
	return out
}

// checkOwner records dir's owner when it runs, and else why the lab goes.
func (c *sweepCandidate) checkOwner(dir, proc string) {
	o, err := readOwner(dir)
	switch {
	case err != nil && !errors.Is(err, os.ErrNotExist):
		c.why = err.Error()
	case err != nil:
	case o.running(proc):
		c.owner = &o
	default:
		c.why = fmt.Sprintf("process %d, which made it, is gone", o.PID)
	}
}

// labNameLen is the length of the names randomName makes.
const labNameLen = len("pfl-xxxxxx")

// splitLabName splits "pfl-1a2b3c-rest" into the lab's name and rest; ok is
// false for a name randomName did not make.
func splitLabName(s string) (name, rest string, ok bool) {
	if len(s) <= labNameLen+1 || s[labNameLen] != '-' || !strings.HasPrefix(s, "pfl-") {
		return "", "", false
	}
	name, rest = s[:labNameLen], s[labNameLen+1:]
	return name, rest, strings.Trim(name[len("pfl-"):], "0123456789abcdef") == ""
}

func sweepLog(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}
