package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/probe"
	"github.com/spf13/cobra"
)

type applyOptions struct {
	prune   bool
	down    bool // remove everything the config owns instead
	noProbe bool
	check   checkOptions
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
half their lease is left. Afterwards it checks every rule as portfwd check
does (--no-probe skips that); exit code 4 when a rule is unreachable.

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
	cmd.Flags().BoolVar(&opts.noProbe, "no-probe", false, "do not check the rules after applying")
	cmd.Flags().BoolVar(&g.enableForwarding, "enable-forwarding", false, "iptables backend: turn on net.ipv4.ip_forward if it is off, instead of failing")
	opts.check.flags(cmd)
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
			g.inspect = true // removing forwards needs no IPv4 forwarding
			return runApply(cmd.Context(), g, args, opts)
		},
	}
}

type applyDoc struct {
	changesDoc
	Failed int          `json:"failed"`
	Via    string       `json:"via,omitempty"`
	Check  []reportView `json:"check,omitempty"` // absent with --no-probe and for down
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
		desired = cfg.Desired(s.self, s.backend.Properties())
	}
	plan, _, err := reconcilePlan(ctx, s, desired, cfg, opts.prune)
	if err != nil {
		return err
	}
	res := forward.Apply(ctx, s.backend, plan)
	var checked checkResult
	if !opts.down && !opts.noProbe {
		if checked.reports, checked.via, err = g.check(ctx, cfg, s, &opts.check); err != nil {
			return err
		}
	}
	if err := g.printResult(cfg, s, plan, res, checked); err != nil {
		return err
	}
	if opts.down && res.Failed() == 0 {
		if err := teardown(ctx, g, s); err != nil {
			return err
		}
	}
	if n, tried := res.Failed(), len(plan.Changes)-plan.Count(forward.Noop); n > 0 && n == tried {
		return withCode(exitPartial, fmt.Errorf("all %d change(s) failed; see above for why and what to do", n))
	} else if n > 0 {
		return withCode(exitPartial, fmt.Errorf("%d of %d change(s) failed; the others were made", n, tried))
	}
	if unreachable(checked.reports) {
		return withCode(exitUnreachable, errors.New("the forwards are in place, but a rule is unreachable; see its layers above"))
	}
	return nil
}

// teardowner is a backend with something of its own to remove once no
// mapping is left: the iptables backend's chains and jumps.
type teardowner interface {
	Teardown(ctx context.Context) error
}

// teardown removes what the backend set up for the mappings, after down
// removed them all.
func teardown(ctx context.Context, g *globals, s *session) error {
	t, ok := s.backend.(teardowner)
	if !ok {
		return nil
	}
	if err := t.Teardown(ctx); err != nil {
		return fmt.Errorf("the forwards are removed, but not portfwd's chains: %w; run portfwd down again", err)
	}
	fmt.Fprintln(g.io.ErrOut, "No chain or jump of portfwd's is left in iptables.")
	return nil
}

// checkResult is what the check after an apply found.
type checkResult struct {
	reports []probe.Report
	via     string
}

// pastTense is what an action did, for apply's table.
var pastTense = map[forward.Action]string{forward.Noop: "unchanged", forward.Create: "created",
	forward.Update: "updated", forward.Renew: "renewed", forward.Delete: "deleted", forward.Conflict: "conflict"}

func (g *globals) printResult(cfg *forward.Config, s *session, plan forward.Plan, res forward.Result, checked checkResult) error {
	if g.json() {
		doc := applyDoc{changesDoc: newChangesDoc(cfg, s, plan), Failed: res.Failed(), Via: checked.via}
		if checked.reports != nil {
			doc.Check = viewReports(checked.reports)
		}
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
	if checked.reports == nil {
		return nil
	}
	fmt.Fprintln(g.io.Out)
	return g.printReports(checked.reports, checked.via)
}
