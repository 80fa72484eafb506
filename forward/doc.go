// Package forward is portfwd's core. A newcomer's map:
//
//	model.go, probekind.go   the model: Protocol, Key, Mapping (with its owner tag
//	                         pf:<config>:<rule>, OwnerOf, Adopts), ProbeKind
//	config_name.go           a config's name (name:, else the file's base name)
//	registry.go              Registry: which file each config name was applied from, so
//	                         status can call a deleted or renamed config's forwards orphaned
//	config*.go, validate*.go the YAML config: Load, every problem with file, line and key; warnings
//	catalog.go               the service catalog (service: minecraft-java)
//	schema.go                the config's JSON schema (portfwd schema), one documented
//	                         line per key, kept equal to the loader's key lists by a test
//	diff.go                  the pure planner: Diff → Plan of Changes (Action enum)
//	apply.go                 Apply: carries a Plan out, one Outcome per Change
//	reconcile.go             Reconcile: list → plan with ownership → apply, the one path
//	                         plan, apply, down and the daemon's Loop share
//	backend.go               the Backend contract, Properties, sentinel errors
//	slow.go                  each request to the gateway under its own timeout
//	                         (WithinRequestTimeout), and the SlowError that names --timeout
//	capabilities.go          optional backend capabilities (Locator, Warner, Finder, TearDowner, Batcher, HostChecker)
//	                         found through decorators with As; readonly.go is one decorator
//	gateway.go               Open and Detect: the backend a config names, or the best of
//	                         those that answer, chosen by their Properties
//	remember.go              Memory: the protocol detection chose, kept between runs
//	                         (DetectionFiles in the cache directory)
//	loop.go, dialer.go       the daemon's reconcile Loop, and the Dialer that lends it a
//	reload.go, observer.go   gateway per pass; config reloads; what a pass reports
//	lock.go                  the run lock every changing run holds
//
// Dependencies point inward: backends (package upnp, upnp/pcp, firewall)
// import forward, never the reverse, and only cmd/portfwd names them, by
// handing Open a list of Openers. Everything here is tested with the
// in-memory gateway of package forwardtest. The package sends nothing on
// the network itself; the one lookup it makes is resolving an
// internal_host given as a host name while loading a config
// (LoadOptions.LookupHost).
package forward
