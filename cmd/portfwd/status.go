package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/portfwd/portfwd/forward"
	"github.com/spf13/cobra"
)

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status [FILE]",
		Short: "Show the gateway and every port forward on it, yours and others'",
		Long: `status shows which gateway portfwd talks to, the protocols it answered, its
external (WAN) address, and every mapping on it, each marked:

  owned     made by portfwd for this host (apply and down manage it)
  portfwd   made by portfwd on another host (left alone here)
  foreign   made by something else: a game, a console, another UPnP client

A config file is optional; without one, the gateway settings come from the
flags and PORTFWD_GATEWAY_* variables.`,
		Example: `  portfwd status
  portfwd status -o json | jq '.mappings[] | select(.ownership == "foreign")'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			g.inspect = true
			return runStatus(cmd.Context(), g, args)
		},
	}
}

type statusMapping struct {
	mappingView
	Ownership string `json:"ownership"` // owned | portfwd | foreign
	// RuleDescription is the description: of the owning rule in the config,
	// for owned mappings. The router only stores the tag: routers truncate
	// descriptions, and a truncated one would look changed on every run.
	RuleDescription string `json:"rule_description,omitempty"`
}

type statusDoc struct {
	FormatVersion   int             `json:"format_version"`
	Gateway         gatewayView     `json:"gateway"`
	ExternalAddress string          `json:"external_address"`
	ExternalError   string          `json:"external_error,omitempty"`
	Mappings        []statusMapping `json:"mappings"`
}

func runStatus(ctx context.Context, g *globals, args []string) error {
	cfg, err := g.optionalConfig(ctx, args)
	if err != nil {
		return err
	}
	return g.withGateway(ctx, cfg, func(ctx context.Context, s *session) error {
		return statusOf(ctx, g, cfg, s)
	})
}

func statusOf(ctx context.Context, g *globals, cfg *forward.Config, s *session) error {
	observed, err := s.backend.List(ctx)
	if err != nil {
		return fmt.Errorf("listing the gateway's mappings: %w", err)
	}
	slices.SortFunc(observed, func(a, b forward.Mapping) int { return a.Key.Compare(b.Key) })
	doc := statusDoc{FormatVersion: formatVersion, Gateway: viewGateway(s), Mappings: []statusMapping{}}
	if ext, err := s.backend.ExternalAddr(ctx); err != nil {
		doc.ExternalError = err.Error()
	} else {
		doc.ExternalAddress = ext.String()
	}
	mine := cfg.Ownership(s.self, s.backend.Properties())
	for _, m := range observed {
		sm := statusMapping{mappingView: *viewMapping(&m), Ownership: ownership(m, mine)}
		if r, ok := cfg.Rule(m.Owner()); ok && sm.Ownership == "owned" {
			sm.RuleDescription = r.Description
		}
		doc.Mappings = append(doc.Mappings, sm)
	}
	if g.json() {
		return g.writeJSON(doc)
	}
	return g.printStatus(doc)
}

// optionalConfig loads the named or default config when there is one, and
// otherwise an empty config whose gateway section comes from flags and
// environment alone.
func (g *globals) optionalConfig(ctx context.Context, args []string) (*forward.Config, error) {
	if _, err := g.configPath(args); err == nil {
		return g.loadConfig(ctx, args)
	}
	gw, err := g.gatewaySettings(forward.GatewaySettings{Backend: "auto", Lease: forward.DefaultLease})
	return &forward.Config{Gateway: gw}, err
}

func ownership(m forward.Mapping, mine forward.DiffOptions) string {
	switch {
	case m.Owner() == "":
		return "foreign"
	case mine.Owns(m):
		return "owned"
	}
	return "portfwd"
}

func (g *globals) printStatus(doc statusDoc) error {
	ext := doc.ExternalAddress
	if doc.ExternalError != "" {
		ext = "unknown: " + doc.ExternalError
	}
	info := g.newTable("GATEWAY", doc.Gateway.Backend+" "+doc.Gateway.URL)
	info.row("PROTOCOLS", strings.Join(doc.Gateway.Protocols, ", "))
	if len(doc.Gateway.Answered) > 0 {
		info.row("ANSWERED", strings.Join(doc.Gateway.Answered, ", ")+" (chose "+doc.Gateway.Backend+": "+doc.Gateway.Why+")")
	}
	info.row("EXTERNAL ADDRESS", ext)
	info.row("THIS HOST", doc.Gateway.ThisHost)
	if doc.Gateway.FromState {
		info.row("MAPPINGS", "as portfwd recorded them: "+doc.Gateway.Backend+" cannot list the router's mappings, so others' are not shown")
	}
	if err := info.flush(); err != nil {
		return err
	}
	fmt.Fprintln(g.io.Out)
	t := g.newTable("PROTO", "EXTERNAL", "INTERNAL", "LEASE", "OWNERSHIP", "DESCRIPTION")
	for _, m := range doc.Mappings {
		lease := forward.LeaseString(secondsDuration(m.LeaseSeconds))
		if !m.Enabled {
			lease += " (disabled)"
		}
		if m.Hairpin {
			lease += ", hairpin"
		}
		desc := m.Description
		if m.RuleDescription != "" {
			desc += " (" + m.RuleDescription + ")"
		}
		t.row(m.Protocol, fmt.Sprint(m.ExternalPort), fmt.Sprintf("%s:%d", m.InternalHost, m.InternalPort),
			lease, m.Ownership, desc)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(g.io.ErrOut, "%d mapping(s) on the gateway.\n", len(doc.Mappings))
	return nil
}
