package lab

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Sweep deletes every lab on this machine: each "pfl-*" namespace with all
// processes in it, and each "pfl-*" dir in the temp dir. It is for cleaning
// up after a test binary was killed before its cleanups ran; it also ends
// labs other processes are still using.
func Sweep(log io.Writer) error {
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("listing namespaces: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "pfl-") || len(e.Name()) <= len("pfl-xxxxxx-") {
			continue
		}
		if log != nil {
			fmt.Fprintf(log, "deleting namespace %s\n", e.Name())
		}
		l := &Lab{Name: e.Name()[:len("pfl-xxxxxx")]}
		h, err := ParseHost(strings.TrimPrefix(e.Name(), l.Name+"-"))
		if err != nil {
			continue // not a name this package made
		}
		errs = append(errs, l.deleteNamespace(h))
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pfl-*"))
	for _, d := range dirs {
		errs = append(errs, os.RemoveAll(d))
	}
	return errors.Join(errs...)
}
