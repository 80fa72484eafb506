package main

import (
	"context"
	"fmt"

	"github.com/portfwd/portfwd/forward"
	"github.com/spf13/cobra"
)

type applyOptions struct {
	prune bool
	down  bool // remove everything the config owns instead
}

func newApplyCmd(g *globals) *cobra.Command {
	opts := &applyOptions{}
	cmd := &cobra.Command{
		Use:   "apply [FILE]",
		Short: "Make the router's port forwards match the file",
		Long: `apply reads FILE (default: portfwd.yaml in ., ~/.config/portfwd, /etc/portfwd),
compares it with the mappings on the gateway, and changes only what differs.
Running it again when nothing changed sends no change to the gateway, so it
is safe from cron or a systemd timer; mappings are renewed once less than
half their lease is left.

Mappings made by other programs or people are never changed, even on a port
the file wants: that is reported as a conflict, the other rules still apply,
and the exit code is 3.`,
		Example: `  portfwd apply minecraft.yaml
  portfwd apply --prune=false      # keep forwards of rules removed from the file
  portfwd apply -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runApply(cmd.Context(), g, args, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.prune, "prune", true, "delete mappings this config owns that are no longer in it")
	return cmd
}

func newDownCmd(g *globals) *cobra.Command {
	opts := &applyOptions{prune: true, down: true}
	return &cobra.Command{
		Use:   "down [FILE]",
		Short: "Remove every port forward the file owns",
		Long: `down removes every mapping on the gateway that this config owns (its
description starts with "portfwd:" and it forwards to this host or a host the
file names). Mappings made by anyone else are left alone.`,
		Example: `  portfwd down minecraft.yaml`,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runApply(cmd.Context(), g, args, opts)
		},
	}
}

type applyDoc struct {
	changesDoc
	Failed int `json:"failed"`
}

func runApply(ctx context.Context, g *globals, args []string, opts *applyOptions) error {
	cfg, err := g.loadConfig(ctx, args)
	if err != nil {
		return err
	}
	return g.withGateway(ctx, cfg, func(ctx context.Context, s *session) error {
		return applyOn(ctx, g, cfg, s, opts)
	})
}

func applyOn(ctx context.Context, g *globals, cfg *forward.Config, s *session, opts *applyOptions) error {
	var desired []forward.Mapping
	if !opts.down {
		desired = cfg.Desired(s.self)
	}
	plan, _, err := reconcilePlan(ctx, s, desired, cfg, opts.prune)
	if err != nil {
		return err
	}
	res := forward.Apply(ctx, s.backend, plan)
	if err := g.printResult(cfg, s, plan, res); err != nil {
		return err
	}
	if n, tried := res.Failed(), len(plan.Changes)-plan.Count(forward.Noop); n > 0 && n == tried {
		return withCode(exitPartial, fmt.Errorf("all %d change(s) failed; see above for why and what to do", n))
	} else if n > 0 {
		return withCode(exitPartial, fmt.Errorf("%d of %d change(s) failed; the others were made", n, tried))
	}
	return nil
}

// pastTense is what an action did, for apply's table.
var pastTense = map[forward.Action]string{forward.Noop: "unchanged", forward.Create: "created",
	forward.Update: "updated", forward.Renew: "renewed", forward.Delete: "deleted", forward.Conflict: "conflict"}

func (g *globals) printResult(cfg *forward.Config, s *session, plan forward.Plan, res forward.Result) error {
	if g.json() {
		doc := applyDoc{newChangesDoc(cfg, s, plan), res.Failed()}
		for _, o := range res.Outcomes {
			doc.Changes = append(doc.Changes, viewOutcome(o))
		}
		return g.writeJSON(doc)
	}
	g.printGatewayLine(s)
	t := g.newTable("RESULT", "RULE", "MAPPING", "TARGET", "NOTE")
	for _, o := range res.Outcomes {
		word, note := pastTense[o.Change.Action], o.Note
		if o.Err != nil {
			word, note = "failed", o.Err.Error()
			if o.Change.Action == forward.Conflict {
				word = "conflict"
			}
		}
		t.row(word, o.Change.Rule, o.Change.Key.String(), target(o.Change), note)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(g.io.ErrOut, "Apply: %d change(s) made, %d failed, %d unchanged.\n",
		res.Made(), res.Failed(), plan.Count(forward.Noop))
	return nil
}
