package forward

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"

	"gopkg.in/yaml.v3"
)

// Registry remembers which config file each config name was last applied
// from, in the state directory, so that status can tell a forward of a
// config that still exists from one whose file was deleted or renamed
// (an orphan: nothing will renew it or take it down). It knows only the
// configs applied with this state directory: another user's configs are
// unknown here, and an unknown name is never called orphaned.
//
// Its rules: Record and Forget are best effort (a failure only makes
// status know less), and never fail an apply; Known returns what could be
// read, nothing when the file is missing or damaged; entries are bounded
// (registryMax), the oldest dropped first.
type Registry struct {
	Dir string // the state directory; "" keeps nothing
}

// registryFile is the registry's file in the state directory.
const registryFile = "configs.json"

// registryMax bounds the names kept: enough for every config a PC has.
const registryMax = 64

// registryDoc is the file's JSON form.
type registryDoc struct {
	FormatVersion int             `json:"format_version"`
	Configs       []registryEntry `json:"configs"`
}

// registryEntry is one config name and the absolute path of its file.
type registryEntry struct {
	Name string `json:"name"`
	File string `json:"file"`
}

// Known returns each remembered config name with its file's absolute
// path.
func (r Registry) Known() map[string]string {
	out := map[string]string{}
	for _, e := range r.read() {
		out[e.Name] = e.File
	}
	return out
}

// Record remembers that the config named name lives in file.
func (r Registry) Record(name, file string) {
	abs, err := filepath.Abs(file)
	if r.Dir == "" || name == "" || err != nil {
		return
	}
	entries := slices.DeleteFunc(r.read(), func(e registryEntry) bool { return e.Name == name })
	entries = append(entries, registryEntry{Name: name, File: abs})
	if len(entries) > registryMax {
		entries = entries[len(entries)-registryMax:]
	}
	r.write(entries)
}

// Forget drops name: its forwards are gone (down).
func (r Registry) Forget(name string) {
	entries := r.read()
	kept := slices.DeleteFunc(slices.Clone(entries), func(e registryEntry) bool { return e.Name == name })
	if r.Dir != "" && len(kept) != len(entries) {
		r.write(kept)
	}
}

func (r Registry) read() []registryEntry {
	if r.Dir == "" {
		return nil
	}
	f, err := os.Open(filepath.Join(r.Dir, registryFile))
	if err != nil {
		return nil
	}
	defer f.Close()
	var doc registryDoc
	if err := json.NewDecoder(io.LimitReader(f, 1<<20)).Decode(&doc); err != nil || doc.FormatVersion != 1 {
		return nil
	}
	return doc.Configs
}

func (r Registry) write(entries []registryEntry) {
	data, err := json.MarshalIndent(registryDoc{FormatVersion: 1, Configs: entries}, "", "  ")
	if err != nil || os.MkdirAll(r.Dir, 0o700) != nil {
		return
	}
	_ = WriteFileAtomic(filepath.Join(r.Dir, registryFile), ".configs-*.json", append(data, '\n'))
}

// ConfigNameOf is the name of the config in file, read without the rest
// of Load (no host lookups): its name: key, else DefaultConfigName(file).
// The error says the file cannot be read.
func ConfigNameOf(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes))
	if err != nil {
		return "", err
	}
	var top struct {
		Name string `yaml:"name"`
	}
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&top); err != nil && !errors.Is(err, io.EOF) {
		return DefaultConfigName(file), nil
	}
	if top.Name == "" {
		return DefaultConfigName(file), nil
	}
	return top.Name, nil
}

// Orphaned reports whether the config named name, remembered in known, is
// gone: its file was deleted, or now holds a config of another name. A
// name not remembered is not orphaned: it may be another user's.
func Orphaned(known map[string]string, name string) bool {
	file, ok := known[name]
	if !ok {
		return false
	}
	now, err := ConfigNameOf(file)
	return errors.Is(err, os.ErrNotExist) || err == nil && now != name
}
