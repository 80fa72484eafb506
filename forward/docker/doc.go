// Package docker is a rule source for portfwd: the forwards that running
// Docker containers ask for with labels (portfwd.forward, portfwd.service,
// …), as a forward.Config of their own whose name tags their mappings
// (Owner, "docker" by default). It never talks to a gateway: a daemon's
// Loop reconciles what Source.Config returns beside the file's config, so
// the file's forwards, other configs' and other hosts' stay untouched.
//
// The engine is read through the Engine interface (the Docker Engine
// API's own Go client behind it, NewEngine), read-only: listing
// containers and networks, and the event stream.
package docker
