package lab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ownerFile, in a lab's Dir, names the process the lab belongs to: the
// test binary that brought it up, or for a Detached lab the shell that ran
// `portfwd-lab up`. Sweep removes a lab only once that process is gone.
const ownerFile = "owner"

// owner is a process, told from a later one with the same pid by its start
// time (field 22 of /proc/PID/stat, in clock ticks since boot).
type owner struct {
	PID   int
	Start uint64
}

// procRoot is where processes are looked up; tests use a fake one.
const procRoot = "/proc"

// writeOwner records pid, as it runs now, as the owner of the lab in dir.
func writeOwner(dir string, pid int) error {
	start, err := processStart(procRoot, pid)
	if err != nil {
		return fmt.Errorf("recording the lab's owner: %w", err)
	}
	b := fmt.Appendf(nil, "%d %d\n", pid, start)
	if err := os.WriteFile(filepath.Join(dir, ownerFile), b, 0o644); err != nil {
		return fmt.Errorf("recording the lab's owner: %w", err)
	}
	return nil
}

// readOwner reads dir's owner file.
func readOwner(dir string) (owner, error) {
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return owner{}, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return owner{}, fmt.Errorf("%s: want PID START", filepath.Join(dir, ownerFile))
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return owner{}, fmt.Errorf("%s: %w", filepath.Join(dir, ownerFile), err)
	}
	return owner{pid, start}, nil
}

// running reports whether o still runs under proc: the pid exists, is no
// zombie, and started when o did.
func (o owner) running(proc string) bool {
	stat, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(o.PID), "stat"))
	if err != nil {
		return false
	}
	state, start, err := parseStat(stat)
	return err == nil && state != 'Z' && state != 'X' && start == o.Start
}

// processStart is pid's start time under proc.
func processStart(proc string, pid int) (uint64, error) {
	stat, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	_, start, err := parseStat(stat)
	return start, err
}

// parseStat reads the state (field 3) and start time (field 22) of a
// /proc/PID/stat line. The command name (field 2) is in parentheses and
// may hold spaces and parentheses: the fields after it follow the last ')'.
func parseStat(stat []byte) (state byte, start uint64, err error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, errors.New("not a /proc/PID/stat line")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, errors.New("short /proc/PID/stat line")
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return f[0][0], start, err
}
