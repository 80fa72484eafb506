package main

import (
	"net"
	"strings"

	"github.com/spf13/cobra"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/probe"
)

// Shell completion (portfwd completion bash|zsh|fish|powershell) completes
// commands and flags by itself; the functions here add the values: service
// names, probe kinds, backends, output formats, and YAML files where a
// command takes a config.

// registerCompletions adds value completion to root's flags and to the
// arguments of its commands that take a config file.
func registerCompletions(root *cobra.Command) {
	values := map[string][]string{
		"output":  {"table", "json"},
		"backend": forward.BackendNames(),
		"lease":   {"30m", "1h", "2h", "24h", "0"},
	}
	for flag, vs := range values {
		_ = root.RegisterFlagCompletionFunc(flag, fixed(vs))
	}
	registerPathCompletions(root)
	for _, c := range root.Commands() {
		if c.Flags().Lookup("kind") != nil {
			_ = c.RegisterFlagCompletionFunc("kind", fixed(probeKindNames()))
		}
		if c.Flags().Lookup("log-format") != nil {
			_ = c.RegisterFlagCompletionFunc("log-format", fixed([]string{"text", "json"}))
		}
		switch {
		case c.ValidArgsFunction != nil:
		case c.Name() == "check":
			c.ValidArgsFunction = completeCheck
		case takesConfig(c.Name()):
			c.ValidArgsFunction = completeConfig
		}
	}
}

// registerPathCompletions completes the flags that take a path (a state
// directory, PEM files) or a network interface, which a shell would
// otherwise complete as any file.
func registerPathCompletions(root *cobra.Command) {
	_ = root.MarkPersistentFlagDirname("state-dir")
	_ = root.RegisterFlagCompletionFunc("wan-interface", completeInterfaces)
	for _, c := range root.Commands() {
		for _, flag := range []string{"via-ca", "tls-cert", "tls-key"} {
			if c.Flags().Lookup(flag) != nil {
				_ = c.MarkFlagFilename(flag, "pem", "crt", "key")
			}
		}
	}
}

// completeInterfaces completes --wan-interface with this machine's
// network interfaces (as ip link lists them).
func completeInterfaces(_ *cobra.Command, _ []string, typed string) ([]cobra.Completion, cobra.ShellCompDirective) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	return fixed(names)(nil, nil, typed)
}

// takesConfig reports whether the command's argument is a config file.
func takesConfig(name string) bool {
	switch name {
	case "plan", "apply", "status", "down", "daemon":
		return true
	}
	return false
}

// fixed completes a flag with those of a fixed list of values that start
// with what was typed.
func fixed(values []string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, typed string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var out []cobra.Completion
		for _, v := range values {
			if strings.HasPrefix(v, typed) {
				out = append(out, v)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeServices completes one catalog service name.
func completeServices(_ *cobra.Command, args []string, typed string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []cobra.Completion
	for _, s := range forward.Services() {
		if strings.HasPrefix(s.Name, typed) {
			names = append(names, cobra.CompletionWithDesc(s.Name, s.Description))
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeConfig completes one YAML file.
func completeConfig(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return []cobra.Completion{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
}

// completeCheck completes check's one argument: the services whose names
// start with what was typed, else YAML files.
func completeCheck(cmd *cobra.Command, args []string, typed string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if names, d := completeServices(cmd, args, typed); len(names) > 0 {
		return names, d
	}
	return completeConfig(cmd, args, typed)
}

// probeKindNames lists the kinds probe --kind accepts.
func probeKindNames() []string {
	var names []string
	for _, k := range probe.Kinds() {
		names = append(names, string(k))
	}
	return names
}
