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
func (g *globals) loadConfig(ctx context.Context, args []string) (*forward.Config, error) {
	path, err := g.configPath(args)
	if err != nil {
		return nil, err
	}
	cfg, warns, err := forward.LoadFile(ctx, path, forward.LoadOptions{})
	for _, w := range warns {
		fmt.Fprintln(g.io.ErrOut, "warning:", w)
	}
	if err != nil {
		var ce *forward.ConfigError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("%s has %d problem(s), nothing was changed:\n%w", path, len(ce.Problems), err)
		}
		return nil, err
	}
	// The file is valid YAML now, so viper can read it too and merge its
	// gateway section under the flags and environment.
	g.v.SetConfigFile(path)
	g.v.SetConfigType("yaml")
	if err := g.v.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if cfg.Gateway, err = g.gatewaySettings(cfg.Gateway); err != nil {
		return nil, err
	}
	return cfg, nil
}

// configPath is the file named on the command line, else $PORTFWD_CONFIG,
// else the first portfwd.yaml on searchPaths.
func (g *globals) configPath(args []string) (string, error) {
	if len(args) > 0 {
		return args[0], nil
	}
	if p := g.v.GetString("config"); p != "" {
		return p, nil
	}
	for _, dir := range searchPaths() {
		p := filepath.Join(dir, "portfwd.yaml")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no config file: name one (portfwd apply my.yaml), or create portfwd.yaml in %s (see portfwd services and the examples in configs/)",
		strings.Join(searchPaths(), ", "))
}

// gatewaySettings applies flag and environment overrides to the file's
// gateway section and validates the result.
func (g *globals) gatewaySettings(gw forward.GatewaySettings) (forward.GatewaySettings, error) {
	if s := g.v.GetString("gateway.backend"); s != "" {
		gw.Backend = s
	}
	if s := g.v.GetString("gateway.address"); s != "" {
		gw.Address = s
	}
	if s := g.v.GetString("gateway.wan_interface"); s != "" {
		gw.WANInterface = s
	}
	if raw := g.v.GetString("gateway.lease"); raw != "" {
		lease, err := forward.ParseLease(raw)
		if err != nil {
			return gw, fmt.Errorf("lease %q (from --lease, PORTFWD_GATEWAY_LEASE or the file): %w", raw, err)
		}
		gw.Lease = lease
	}
	if err := forward.ValidateGateway(gw); err != nil {
		return gw, fmt.Errorf("gateway settings: %w", err)
	}
	return gw, nil
}
