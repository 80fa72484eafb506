package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/portfwd/portfwd/forward"
)

// Which config a forward on the router belongs to, for status, and the
// bookkeeping that lets status call a forward orphaned: apply remembers
// each config's name and file in the state directory (forward.Registry),
// down forgets it.

// The ownership values of status, in JSON and tables.
const (
	ownedByThis   = "owned"    // this config's: apply and down manage it
	ownedByOther  = "portfwd"  // another config's, or another PC's: left alone
	ownedByOrphan = "orphaned" // a config on this PC whose file is gone or renamed
	ownedByNobody = "foreign"  // not made by portfwd
)

// owners classifies the gateway's mappings for one status run.
type owners struct {
	own   forward.DiffOptions // this config's ownership
	known map[string]string   // configs applied from this state directory
	file  string              // the config file status was given; "" for none
}

// classify says whose m is and, for an orphan, the command that removes it.
func (w owners) classify(m forward.Mapping) (ownership, config, fix string) {
	tag, tagged := forward.OwnerOf(m.Description)
	switch {
	case !tagged:
		return ownedByNobody, "", ""
	case w.own.Owns(m):
		return ownedByThis, tag.Config, ""
	case tag.Config != "" && w.thisPC(m) && forward.Orphaned(w.known, tag.Config):
		return ownedByOrphan, tag.Config, w.downCommand(tag.Config)
	}
	return ownedByOther, tag.Config, ""
}

// thisPC reports whether m forwards to this PC or a host this config names
// (or to anywhere, on a gateway that is this machine).
func (w owners) thisPC(m forward.Mapping) bool {
	return w.own.AnyHost || slices.Contains(w.own.Hosts, m.InternalHost)
}

// downCommand is the command that removes the forwards of the config
// named name.
func (w owners) downCommand(name string) string {
	cmd := "portfwd down --name " + name
	if w.file != "" {
		cmd += " " + shellQuote(w.file)
	}
	return cmd
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// remember records, after an apply, the config's name and file so that a
// later status can tell when the file is gone; after a down (of a file, or
// --name) that removed everything, forgets the name.
func remember(reg forward.Registry, mode forward.Mode, cfg *forward.Config, res forward.Result) {
	switch {
	case cfg.Name == "":
	case mode == forward.ModeApply && cfg.File != "":
		reg.Record(cfg.Name, cfg.File)
	case mode == forward.ModeDown && res.Failed() == 0:
		reg.Forget(cfg.Name)
	}
}

// namedConfig is the config `down --name NAME` removes the forwards of:
// no rules, the name given, and the gateway and hosts of the file given
// with it (if any), so that its orphans to a host the file names go too.
func namedConfig(cfg *forward.Config, name string) (*forward.Config, error) {
	if err := forward.CheckConfigName(name); err != nil {
		return nil, fmt.Errorf("--name: %w", err)
	}
	out := &forward.Config{Name: name, Gateway: cfg.Gateway}
	for _, r := range cfg.Rules {
		if r.InternalAddr.IsValid() {
			out.Rules = append(out.Rules, forward.Rule{InternalAddr: r.InternalAddr})
		}
	}
	return out, nil
}

// namedConfigLoader wraps load for down --name.
func namedConfigLoader(load func(context.Context) (*forward.Config, error), name *string) func(context.Context) (*forward.Config, error) {
	return func(ctx context.Context) (*forward.Config, error) {
		cfg, err := load(ctx)
		if err != nil || *name == "" {
			return cfg, err
		}
		return namedConfig(cfg, *name)
	}
}

// printOrphans tells, after the status table, the command that removes
// each orphaned config's forwards, once per config. It never fails: the
// error is for its caller's return.
func printOrphans(out *printer, mappings []statusMapping) error {
	seen := map[string]bool{}
	for _, m := range mappings {
		if m.Ownership != ownedByOrphan || seen[m.Config] {
			continue
		}
		seen[m.Config] = true
		out.errf("Config %q is gone (its file was deleted or renamed); its forwards are orphaned. Remove them: %s\n",
			m.Config, forward.Printable(m.Fix))
	}
	return nil
}

// othersRemain reports whether, after down, the gateway still holds
// forwards portfwd made for other configs: then what the backend set up
// for them (iptables: portfwd's chains) must stay.
func othersRemain(r *forward.Reconciliation) bool {
	deleted := map[forward.Key]bool{}
	for _, c := range r.Plan.Changes {
		if c.Action == forward.Delete {
			deleted[c.Key] = true
		}
	}
	for _, m := range r.Observed {
		if _, tagged := forward.OwnerOf(m.Description); tagged && !deleted[m.Key] {
			return true
		}
	}
	return false
}
