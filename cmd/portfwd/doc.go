// Command portfwd keeps a home router's port forwards equal to a YAML file.
//
// The commands are thin: each turns flags into options, calls into package
// forward with a backend from package upnp, and renders the result as a
// table or as JSON. The exit codes live in exitcode.go, and nowhere else.
package main
