package main

import (
	"context"
	"fmt"

	"github.com/portfwd/portfwd/forward"
	"github.com/spf13/cobra"
)

type planOptions struct {
	detailedExitCode bool
	prune            bool
}

func newPlanCmd(g *globals) *cobra.Command {
	opts := &planOptions{}
	cmd := &cobra.Command{
		Use:   "plan [FILE]",
		Short: "Show what apply would change on the router, without changing it",
		Long: `plan reads FILE (default: portfwd.yaml in ., ~/.config/portfwd, /etc/portfwd),
reads every mapping on the gateway, and prints the changes apply would make:
create, update, renew, delete, or conflict (the port is held by someone
else's mapping, which portfwd never touches).

Nothing is changed on the gateway.`,
		Example: `  portfwd plan minecraft.yaml
  portfwd plan --detailed-exitcode && echo "router matches the file"
  portfwd plan -o json | jq '.changes[] | select(.action != "noop")'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			g.inspect = true
			return runPlan(cmd.Context(), g, args, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.detailedExitCode, "detailed-exitcode", false, "exit 2 when the gateway differs from the file (0 when it matches)")
	cmd.Flags().BoolVar(&opts.prune, "prune", true, "plan to delete mappings this config owns that are no longer in it")
	return cmd
}

// changesDoc is the head plan and apply share in JSON.
type changesDoc struct {
	FormatVersion int            `json:"format_version"`
	Config        string         `json:"config"`
	Gateway       gatewayView    `json:"gateway"`
	Changes       []changeView   `json:"changes"`
	Summary       map[string]int `json:"summary"`
}

func newChangesDoc(cfg *forward.Config, s *session, plan forward.Plan) changesDoc {
	return changesDoc{FormatVersion: formatVersion, Config: cfg.File, Gateway: viewGateway(s),
		Changes: []changeView{}, Summary: summary(plan)}
}

type planDoc struct {
	changesDoc
	Pending bool `json:"pending"`
}

func runPlan(ctx context.Context, g *globals, args []string, opts *planOptions) error {
	cfg, err := g.loadConfig(ctx, args)
	if err != nil {
		return err
	}
	return g.withGateway(ctx, cfg, func(ctx context.Context, s *session) error {
		plan, _, err := reconcilePlan(ctx, s, cfg.Desired(s.self, s.backend.Properties()), cfg, opts.prune)
		if err != nil {
			return err
		}
		if err := g.printPlan(cfg, s, plan); err != nil {
			return err
		}
		if opts.detailedExitCode && plan.Pending() {
			return withCode(exitPending, nil)
		}
		return nil
	})
}

func (g *globals) printPlan(cfg *forward.Config, s *session, plan forward.Plan) error {
	if g.json() {
		doc := planDoc{newChangesDoc(cfg, s, plan), plan.Pending()}
		for _, c := range plan.Changes {
			doc.Changes = append(doc.Changes, viewChange(c))
		}
		return g.writeJSON(doc)
	}
	g.printGatewayLine(s)
	t := g.newTable("ACTION", "RULE", "MAPPING", "TARGET", "REASON")
	for _, c := range plan.Changes {
		t.row(c.Action.String(), c.Rule, c.Key.String(), target(c), c.Reason)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(g.io.ErrOut, "Plan: %s.\n", summaryLine(plan))
	return nil
}
