// Package forward is portfwd's core: the model of a port forward (Rule,
// Mapping, Protocol, Key), loading and validating the YAML config, the service
// catalog, the pure planner Diff, Apply, and the Backend contract that every
// gateway protocol implements.
//
// The package does no network I/O of its own; backends (package upnp,
// package firewall) are handed in by the caller, so everything here can be
// tested with fakes and runs the same against any gateway.
package forward
