package main

import (
	"github.com/portfwd/portfwd/forward"
)

// factory is what every command shares, after cli/cli's cmdutil.Factory:
// the streams, the global settings (resolved from flags and PORTFWD_*
// variables once, before the command runs), the printer, and the seam
// that names the concrete backends. Commands read it; none writes to it
// after the root command has resolved the settings.
type factory struct {
	IO IOStreams
	// Settings are the global flags and environment, resolved by the root
	// command's PersistentPreRunE.
	Settings settings
	// Openers are the backends portfwd can talk to, in order of
	// preference (openers.go, the one place that names them). Tests hand
	// in an in-memory gateway here.
	Openers func(o openOptions) []forward.Opener
	// Memory is where auto detection remembers its choice between runs
	// (openers.go); nil, or a nil Memory, remembers nothing. Tests that
	// replace Openers leave it nil.
	Memory func(o openOptions) forward.Memory

	out *printer
}

// newFactory is the factory of a real run on io.
func newFactory(io IOStreams) *factory {
	io.ErrOut = forward.SyncWriter(io.ErrOut) // warnings and the daemon's log come from several goroutines
	return &factory{IO: io, Openers: defaultOpeners, Memory: detectMemory, out: &printer{io: io}}
}

// memory is the Memory for a run with o, or nil.
func (f *factory) memory(o openOptions) forward.Memory {
	if f.Memory == nil {
		return nil
	}
	return f.Memory(o)
}
