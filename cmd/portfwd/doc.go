// Command portfwd keeps a home router's port forwards equal to a YAML file.
//
// The commands are thin, after the GitHub CLI's layout: root.go resolves the
// global flags and PORTFWD_* variables once into settings; each command
// (plan.go, apply.go for apply and down, status.go, check.go, probecmd.go,
// services.go, daemon.go) turns its own flags into an options struct — a
// printer, a timeout, how to read the config and an Open seam (connect.go)
// — and makes one call into package forward. newCmdX(f, runF) lets a test
// take the options instead of running (options_test.go); the CLI scripts in
// testdata/script hand the factory an in-memory gateway instead of the real
// openers. openers.go is the one place that names concrete backends,
// render.go and checkview.go hold the tables and JSON documents (a
// compatibility promise: "format_version"), and exitcode.go the one
// exit-code table. metrics.go and notify.go are the daemon's Prometheus
// endpoint and systemd notifications.
package main
