package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/portfwd/portfwd/forward"
)

// searchPaths are where portfwd looks for portfwd.yaml when no file is
// named, nearest first.
func searchPaths() []string {
	paths := []string{"."}
	if home, err := os.UserHomeDir(); err == nil {
		paths = append(paths, filepath.Join(home, ".config", "portfwd"))
	}
	return append(paths, "/etc/portfwd")
}

// loadConfig finds, validates and returns the config, with the gateway
// section overridden by flags and PORTFWD_* variables. Warnings go to
// stderr. Any error here means nothing has been sent to a gateway.
func (f *factory) loadConfig(ctx context.Context, args []string) (*forward.Config, error) {
	path, err := f.configPath(args)
	if err != nil {
		return nil, err
	}
	return f.loadFile(ctx, path)
}

// fileConfig is loadConfig of args, for later.
func (f *factory) fileConfig(args []string) func(context.Context) (*forward.Config, error) {
	return func(ctx context.Context) (*forward.Config, error) { return f.loadConfig(ctx, args) }
}

// loadFile is loadConfig for a file already found.
func (f *factory) loadFile(ctx context.Context, path string) (*forward.Config, error) {
	cfg, warns, err := forward.LoadFile(ctx, path, forward.LoadOptions{})
	for _, w := range warns {
		f.warn(w.String())
	}
	if err != nil {
		var ce *forward.ConfigError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("%s has %d problem(s), nothing was changed:\n%w", path, ce.Count(), err)
		}
		return nil, err
	}
	if cfg.Gateway, err = f.Settings.Gateway.apply(cfg.Gateway); err != nil {
		return nil, err
	}
	return cfg, nil
}

// configPath is the file named on the command line, else $PORTFWD_CONFIG,
// else the first portfwd.yaml on searchPaths.
func (f *factory) configPath(args []string) (string, error) {
	if len(args) > 0 {
		return args[0], nil
	}
	if p := f.Settings.Config; p != "" {
		return p, nil
	}
	for _, dir := range searchPaths() {
		p := filepath.Join(dir, "portfwd.yaml")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no config file: name one (portfwd apply my.yaml), or create portfwd.yaml in %s (portfwd example minecraft-java > portfwd.yaml writes one to start from; portfwd services lists the services)",
		strings.Join(searchPaths(), ", "))
}

// optionalConfig loads the named or default config when there is one, and
// otherwise a config of rules alone whose gateway section comes from flags
// and environment.
func (f *factory) optionalConfig(ctx context.Context, args []string, rules ...forward.Rule) (*forward.Config, error) {
	if _, err := f.configPath(args); err == nil && len(rules) == 0 {
		return f.loadConfig(ctx, args)
	}
	gw, err := f.Settings.Gateway.apply(forward.GatewaySettings{Backend: forward.Auto, Lease: forward.DefaultLease})
	return &forward.Config{Gateway: gw, Rules: rules}, err
}

// apply sets the overrides that were given on gw, and validates the
// result.
func (o gatewayOverrides) apply(gw forward.GatewaySettings) (forward.GatewaySettings, error) {
	if o.Backend != "" {
		gw.Backend = o.Backend
	}
	if o.Address != "" {
		gw.Address = o.Address
	}
	if o.WANInterface != "" {
		gw.WANInterface = o.WANInterface
	}
	if o.Lease != "" {
		lease, err := forward.ParseLease(o.Lease)
		if err != nil {
			return gw, fmt.Errorf("lease %q (from --lease, PORTFWD_GATEWAY_LEASE or the file): %w", o.Lease, err)
		}
		gw.Lease = lease
	}
	if err := forward.ValidateGateway(gw); err != nil {
		return gw, fmt.Errorf("gateway settings: %w", err)
	}
	return gw, nil
}
