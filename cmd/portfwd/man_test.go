package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestManPages writes the man pages as make package does: one for portfwd
// and one per command, each a roff page with its name, synopsis and the
// command's own description, and portfwd.1 pointing at the others.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	execute(t, newCmdRoot(testFactory()), "man", dir)
	root := newCmdRoot(testFactory())
	for _, c := range root.Commands() {
		if !c.IsAvailableCommand() {
			continue
		}
		page := filepath.Join(dir, "portfwd-"+c.Name()+".1")
		b, err := os.ReadFile(page)
		if err != nil {
			t.Errorf("no page for %s: %v", c.Name(), err)
			continue
		}
		for _, want := range []string{".TH \"PORTFWD-" + strings.ToUpper(c.Name()) + "\" \"1\"", ".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s lacks %q", page, want)
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "portfwd.1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"portfwd - Keep your router", "\\fBportfwd-apply(1)\\fP", "pf:<config name>:<rule>", "keeps a home router", "--output"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("portfwd.1 lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "portfwd-man.1")); err == nil {
		t.Error("the hidden man command has a page")
	}
}
