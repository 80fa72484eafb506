package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/portfwd/portfwd/forward"
	"github.com/spf13/cobra"
)

// statusOptions is everything status needs, resolved from flags.
type statusOptions struct {
	gatewayRun
	Registry forward.Registry // the configs applied on this PC, to find orphans
	Docker   dockerFlags      // --docker: the containers' forwards too
}

func newCmdStatus(f *factory, runF func(context.Context, *statusOptions) error) *cobra.Command {
	opts := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status [FILE]",
		Short: "Show the gateway and every port forward on it, yours and others'",
		Long: `status shows which gateway portfwd talks to, the protocols it answered, its
external (WAN) address, and every mapping on it, each marked:

  owned     this config's: made by portfwd from this file (apply and down manage it)
  portfwd   made by portfwd for another config or on another host (left alone here)
  orphaned  made by portfwd on this PC for a config whose file was deleted or
            renamed: nothing renews or removes it; the FIX column has the command
  foreign   made by something else: a game, a console, another UPnP client

A config file is optional; without one, the gateway settings come from the
flags and PORTFWD_GATEWAY_* variables.`,
		Example: `  portfwd status
  portfwd status -o json | jq '.mappings[] | select(.ownership == "foreign")'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.gatewayRun = f.gatewayRun(accessRead, false, func(ctx context.Context) (*forward.Config, error) {
				return f.optionalConfig(ctx, args)
			})
			opts.gatewayRun.Docker = &opts.Docker
			opts.Registry = forward.Registry{Dir: f.Settings.StateDir}
			return runOr(cmd.Context(), runF, runStatus, opts)
		},
	}
	opts.Docker.flags(cmd, false)
	return cmd
}

type statusMapping struct {
	mappingView
	Ownership string `json:"ownership"` // owned | portfwd | orphaned | foreign
	// Config is the name of the config whose tag the mapping carries ("" for
	// foreign ones and those of an older portfwd).
	Config string `json:"config,omitempty"`
	// Fix is, for an orphaned mapping, the command that removes it.
	Fix string `json:"fix,omitempty"`
	// RuleDescription is the description: of the owning rule in the config,
	// for owned mappings. The router only stores the tag: routers truncate
	// descriptions, and a truncated one would look changed on every run.
	RuleDescription string `json:"rule_description,omitempty"`
}

type statusDoc struct {
	FormatVersion   int             `json:"format_version"`
	Config          string          `json:"config,omitempty"` // the file read, if any
	Gateway         gatewayView     `json:"gateway"`
	ExternalAddress string          `json:"external_address"`
	ExternalError   string          `json:"external_error,omitempty"`
	Mappings        []statusMapping `json:"mappings"`
}

func runStatus(ctx context.Context, opts *statusOptions) error {
	return opts.run(ctx, func(ctx context.Context, cfg *forward.Config, g *forward.Gateway) error {
		doc, err := statusOf(ctx, cfg, g, opts.Registry)
		if err != nil {
			return err
		}
		if opts.Out.json {
			return opts.Out.JSON(doc)
		}
		return printStatus(opts.Out, doc)
	})
}

// statusOf reads the gateway's mappings and its external address.
func statusOf(ctx context.Context, cfg *forward.Config, g *forward.Gateway, reg forward.Registry) (statusDoc, error) {
	r, err := forward.Reconcile(ctx, g, cfg, forward.ReconcileOptions{Mode: forward.ModePlan})
	if err != nil {
		return statusDoc{}, err
	}
	observed := slices.SortedFunc(slices.Values(r.Observed), func(a, b forward.Mapping) int { return a.Key.Compare(b.Key) })
	doc := statusDoc{FormatVersion: formatVersion, Config: cfg.File, Gateway: viewGateway(g), Mappings: []statusMapping{}}
	if ext, err := g.Backend.ExternalAddr(ctx); err != nil {
		doc.ExternalError = err.Error()
	} else {
		doc.ExternalAddress = ext.String()
	}
	w := owners{own: r.Own, known: reg.Known(), file: cfg.File}
	for _, m := range observed {
		sm := statusMapping{mappingView: *viewMapping(&m)}
		sm.Ownership, sm.Config, sm.Fix = w.classify(m)
		if rule, ok := cfg.Rule(m.Owner()); ok && sm.Ownership == ownedByThis {
			sm.RuleDescription = rule.Description
		}
		doc.Mappings = append(doc.Mappings, sm)
	}
	return doc, nil
}

func printStatus(out *printer, doc statusDoc) error {
	ext := doc.ExternalAddress
	if doc.ExternalError != "" {
		ext = "unknown: " + doc.ExternalError
	}
	info := out.table("GATEWAY", gatewayWords(doc.Gateway))
	info.row("BACKEND", doc.Gateway.Backend)
	if d := detectionWords(doc.Gateway); d != "" {
		info.row("DETECTION", d)
	}
	info.row("EXTERNAL ADDRESS", ext)
	info.row("THIS HOST", doc.Gateway.ThisHost)
	if doc.Gateway.ThisHostIPv6 != "" {
		info.row("THIS HOST IPV6", doc.Gateway.ThisHostIPv6+" ("+doc.Gateway.ThisHostIPv6Why+")")
	}
	if doc.Gateway.FromState {
		info.row("MAPPINGS", "as portfwd recorded them: "+doc.Gateway.Backend+" cannot list the router's mappings, so others' are not shown")
	}
	if err := info.flush(); err != nil {
		return err
	}
	fmt.Fprintln(out.io.Out)
	t := out.table("PROTO", "EXTERNAL", "INTERNAL", "LEASE", "OWNERSHIP", "NOTE", "DESCRIPTION")
	for _, m := range doc.Mappings {
		desc := m.Description
		if m.RuleDescription != "" {
			desc += " (" + m.RuleDescription + ")"
		}
		t.row(m.proto(), fmt.Sprint(m.ExternalPort), m.target(),
			forward.LeaseString(secondsDuration(m.LeaseSeconds)), m.Ownership, mappingNote(m.mappingView), desc)
	}
	if err := t.flush(); err != nil {
		return err
	}
	out.errf("%d mapping(s) on the gateway.\n", len(doc.Mappings))
	if doc.Config == "" && slices.ContainsFunc(doc.Mappings, func(m statusMapping) bool { return m.Rule != "" }) {
		out.errf("The router keeps only portfwd's tag (pf:<config>:<rule>); the rules' descriptions are in their config: name it (portfwd status FILE) to show them.\n")
	}
	return printOrphans(out, doc.Mappings)
}

// mappingNote is what a status row says of a mapping beside its lease:
// disabled on the router, hairpin NAT written for it.
func mappingNote(m mappingView) string {
	var notes []string
	if !m.Enabled {
		notes = append(notes, "disabled")
	}
	if m.Hairpin {
		notes = append(notes, "hairpin")
	}
	return strings.Join(notes, ", ")
}
