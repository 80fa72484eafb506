package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/portfwd/portfwd/forward"
)

// planOptions is everything plan needs, resolved from flags.
type planOptions struct {
	gatewayRun
	DetailedExitCode bool
	Prune            bool
	Docker           dockerFlags // --docker: the containers' forwards too
}

func newCmdPlan(f *factory, runF func(context.Context, *planOptions) error) *cobra.Command {
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
			opts.gatewayRun = f.gatewayRun(accessRead, false, f.fileConfig(args))
			opts.gatewayRun.Docker = &opts.Docker
			return runOr(cmd.Context(), runF, runPlan, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.DetailedExitCode, "detailed-exitcode", false, "exit 2 when the gateway differs from the file (0 when it matches)")
	cmd.Flags().BoolVar(&opts.Prune, "prune", true, "plan to delete mappings this config owns that are no longer in it")
	opts.Docker.flags(cmd, false)
	return cmd
}

// runOr runs runF when a test handed one in, else run: the seam that
// lets tests check what a command resolved from its flags.
func runOr[O any](ctx context.Context, runF, run func(context.Context, *O) error, opts *O) error {
	if runF != nil {
		return runF(ctx, opts)
	}
	return run(ctx, opts)
}

func runPlan(ctx context.Context, opts *planOptions) error {
	return opts.run(ctx, func(ctx context.Context, cfg *forward.Config, g *forward.Gateway) error {
		r, err := forward.Reconcile(ctx, g, cfg, forward.ReconcileOptions{Mode: forward.ModePlan, Prune: opts.Prune})
		if err != nil {
			return err
		}
		if err := printPlan(opts.Out, cfg, g, r.Plan); err != nil {
			return err
		}
		if opts.DetailedExitCode && r.Plan.Pending() {
			return withCode(exitPending, nil)
		}
		return nil
	})
}

// changesDoc is the head plan and apply share in JSON.
type changesDoc struct {
	FormatVersion int            `json:"format_version"`
	Config        string         `json:"config"`
	Gateway       gatewayView    `json:"gateway"`
	Changes       []changeView   `json:"changes"`
	Summary       map[string]int `json:"summary"`
}

func newChangesDoc(cfg *forward.Config, g *forward.Gateway, plan forward.Plan) changesDoc {
	return changesDoc{FormatVersion: formatVersion, Config: cfg.File, Gateway: viewGateway(g),
		Changes: []changeView{}, Summary: summary(plan)}
}

type planDoc struct {
	changesDoc
	Pending bool `json:"pending"`
}

func printPlan(out *printer, cfg *forward.Config, g *forward.Gateway, plan forward.Plan) error {
	if out.json {
		doc := planDoc{newChangesDoc(cfg, g, plan), plan.Pending()}
		for _, c := range plan.Changes {
			doc.Changes = append(doc.Changes, viewChange(c))
		}
		return out.JSON(doc)
	}
	out.gatewayLine(g)
	t := out.table("ACTION", "RULE", "MAPPING", "TARGET", "REASON")
	for _, c := range plan.Changes {
		t.row(planWord(c.Action), c.Rule, c.Key.String(), target(c), c.Reason)
	}
	if err := t.flush(); err != nil {
		return err
	}
	out.errf("Plan: %s.\n", summaryLine(plan))
	return nil
}

// planWord is the action as plan's table says it: its name, but
// "unchanged" for Noop, the word apply and the summary line use. JSON
// keeps the name ("noop"): it is a compatibility promise.
func planWord(a forward.Action) string {
	if a == forward.Noop {
		return a.Past()
	}
	return a.String()
}
