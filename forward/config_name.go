package forward

import (
	"fmt"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// A config's name tags its forwards on the router: "pf:<name>:<rule>"
// (Tag). It is the top-level name: key, or else DefaultConfigName of the
// file. The name, not the file's path, is what makes forwards a config's
// own, so that moving the file (or running it from the systemd unit and by
// hand) keeps them; two files of the same base name applied on one PC
// share their forwards unless one of them says name:.

// DefaultConfigName is the name of a config file without a name: key: its
// base name without the extension, lower-cased, every character other than
// a letter, digit or '-' made a '-', cut to MaxConfigNameLen; "portfwd"
// when nothing is left. configs/minecraft.yaml is "minecraft".
func DefaultConfigName(file string) string {
	base := strings.ToLower(filepath.Base(file))
	base = strings.TrimSuffix(strings.TrimSuffix(base, ".yaml"), ".yml")
	b := []byte(base)
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			b[i] = '-'
		}
	}
	name := strings.Trim(string(b), "-")
	if len(name) > MaxConfigNameLen {
		name = strings.TrimRight(name[:MaxConfigNameLen], "-")
	}
	if name == "" || name == "." {
		return "portfwd"
	}
	return name
}

// configName reads the top-level name: key, checked as a rule's name is
// but shorter (MaxConfigNameLen), or DefaultConfigName of the file.
func (l *loader) configName(n *yaml.Node) string {
	name, ok := l.scalar(n, "name")
	if !ok {
		return DefaultConfigName(l.file)
	}
	l.check(n, "name", CheckConfigName(name))
	return name
}

// CheckConfigName accepts what a config's name may be: lower-case
// letters, digits and hyphens, starting with a letter or digit, at most
// MaxConfigNameLen characters.
func CheckConfigName(name string) error {
	switch {
	case len(name) > MaxConfigNameLen:
		return fmt.Errorf("name %q is longer than %d characters: it tags every forward on the router (pf:<name>:<rule>), and routers cut descriptions short", name, MaxConfigNameLen)
	case !namePattern.MatchString(name):
		return fmt.Errorf("invalid name %q: use lower-case letters, digits and hyphens, starting with a letter or digit", name)
	}
	return nil
}
