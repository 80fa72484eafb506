package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/probe"
)

// applyOptions is everything apply and down need, resolved from flags.
type applyOptions struct {
	gatewayRun
	Mode             forward.Mode // ModeApply, or ModeDown
	Prune            bool
	NoProbe          bool
	EnableForwarding bool
	Vantage          vantageFlags
	// Name is down --name: remove the forwards of the config of that
	// name (an orphan's) instead of the file's own.
	Name     string
	Registry forward.Registry // remembers which file each config name was applied from
	Docker   dockerFlags      // --docker: the containers' forwards too
}

func newCmdApply(f *factory, runF func(context.Context, *applyOptions) error) *cobra.Command {
	opts := &applyOptions{Mode: forward.ModeApply}
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
			opts.gatewayRun = f.gatewayRun(accessChange, opts.EnableForwarding, f.fileConfig(args))
			opts.gatewayRun.Docker = &opts.Docker
			opts.Registry = forward.Registry{Dir: f.Settings.StateDir}
			return runOr(cmd.Context(), runF, runApply, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Prune, "prune", true, "delete mappings this config owns that are no longer in it")
	cmd.Flags().BoolVar(&opts.NoProbe, "no-probe", false, "do not check the rules after applying")
	cmd.Flags().BoolVar(&opts.EnableForwarding, "enable-forwarding", false, "iptables backend: turn on net.ipv4.ip_forward if it is off (until reboot; says so), instead of failing")
	opts.Vantage.flags(cmd)
	opts.Docker.flags(cmd, false)
	return cmd
}

func newCmdDown(f *factory, runF func(context.Context, *applyOptions) error) *cobra.Command {
	opts := &applyOptions{Mode: forward.ModeDown, Prune: true, NoProbe: true}
	cmd := &cobra.Command{
		Use:   "down [FILE]",
		Short: "Remove every port forward the file owns",
		Long: `down removes every mapping on the gateway that this config owns (its
description is "pf:<config name>:<rule>", or "portfwd:<rule>" from an older
portfwd for one of its rules, and it forwards to this host or a host the file
names). Forwards of other configs, other PCs or other programs are left alone.

--name NAME removes instead the forwards of the config called NAME on this
PC: the way to remove an orphan's, whose file was deleted or renamed
(portfwd status shows them, with this command). FILE is then optional: it
gives the gateway settings and the other hosts to look at.`,
		Example: `  portfwd down minecraft.yaml
  portfwd down --name old-mc`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			load := f.fileConfig(args)
			if opts.Name != "" {
				load = namedConfigLoader(func(ctx context.Context) (*forward.Config, error) { return f.optionalConfig(ctx, args) }, &opts.Name)
			}
			// Removing forwards needs no IPv4 forwarding.
			opts.gatewayRun = f.gatewayRun(accessRemove, false, load)
			opts.gatewayRun.Docker = &opts.Docker
			opts.Registry = forward.Registry{Dir: f.Settings.StateDir}
			return runOr(cmd.Context(), runF, runApply, opts)
		},
	}
	cmd.Flags().StringVar(&opts.Name, "name", "", "remove the forwards of the config with this name (an orphan's: see portfwd status)")
	opts.Docker.flags(cmd, false)
	return cmd
}

type applyDoc struct {
	changesDoc
	Failed int          `json:"failed"`
	Via    string       `json:"via,omitempty"`
	Via6   string       `json:"via6,omitempty"`  // the probe server's URL for IPv6, when another
	Check  []reportView `json:"check,omitempty"` // absent with --no-probe and for down
}

func runApply(ctx context.Context, opts *applyOptions) error {
	return opts.run(ctx, func(ctx context.Context, cfg *forward.Config, g *forward.Gateway) error {
		return applyOn(ctx, opts, cfg, g)
	})
}

func applyOn(ctx context.Context, opts *applyOptions, cfg *forward.Config, g *forward.Gateway) error {
	if !opts.Out.json {
		opts.Out.gatewayLine(g) // before any progress: the gateway is found
	}
	line := opts.Out.applyProgress()
	r, err := forward.Reconcile(ctx, g, cfg, forward.ReconcileOptions{Mode: opts.Mode, Prune: opts.Prune, Progress: line.callback()})
	line.clear()
	if err != nil {
		return err
	}
	res := *r.Result
	remember(opts.Registry, opts.Mode, cfg, res)
	var checked checkResult
	if !opts.NoProbe {
		if checked, err = runChecks(ctx, cfg, g, opts.Vantage, opts.Out.progress()); err != nil {
			return err
		}
	}
	show := printResult
	if opts.Mode == forward.ModeDown {
		show = printDown
	}
	if err := show(opts.Out, cfg, g, r.Plan, res, checked); err != nil {
		return err
	}
	if opts.Mode == forward.ModeDown && res.Failed() == 0 && !othersRemain(r) {
		if err := teardown(ctx, opts.Out, g); err != nil {
			return err
		}
	}
	return applyExit(r.Plan, res, checked)
}

// applyExit is the exit of an apply: partial when a change failed, else
// unreachable when a rule's check says so.
func applyExit(plan forward.Plan, res forward.Result, checked checkResult) error {
	if n, tried := res.Failed(), len(plan.Changes)-plan.Count(forward.Noop)-plan.Count(forward.Held); n > 0 && n == tried {
		return withCode(exitPartial, fmt.Errorf("all %d change(s) failed; see above for why and what to do", n))
	} else if n > 0 {
		return withCode(exitPartial, fmt.Errorf("%d of %d change(s) failed; the others were made", n, tried))
	}
	if unreachable(checked.reports) {
		return withCode(exitUnreachable, errors.New("the forwards are in place, but a rule is unreachable; see its layers above"))
	}
	if err := notChecked(checked.reports); err != nil {
		return withCode(exitNotChecked, fmt.Errorf("the forwards are in place, but %w", err))
	}
	return nil
}

// teardown removes what the backend set up for the mappings (TearDowner),
// after down removed them all.
func teardown(ctx context.Context, out *printer, g *forward.Gateway) error {
	t, ok := forward.As[forward.TearDowner](g.Backend)
	if !ok {
		return nil
	}
	if err := t.Teardown(ctx); err != nil {
		return fmt.Errorf("the forwards are removed, but not portfwd's chains: %w; run portfwd down again", err)
	}
	out.errf("No chain or jump of portfwd's is left in iptables.\n")
	return nil
}

// checkResult is what the check after an apply found.
type checkResult struct {
	reports []probe.Report
	via     string
	via6    string // the probe server's URL for IPv6, when another than via
}

func printResult(out *printer, cfg *forward.Config, g *forward.Gateway, plan forward.Plan, res forward.Result, checked checkResult) error {
	if out.json {
		return printResultJSON(out, cfg, g, plan, res, checked)
	}
	if err := outcomeTable(out, res); err != nil {
		return err
	}
	out.errf("Apply: %d change(s) made, %d failed, %d unchanged%s.\n", res.Made(), res.Failed(), plan.Count(forward.Noop), heldSuffix(plan))
	if checked.reports == nil {
		return nil
	}
	fmt.Fprintln(out.io.Out)
	return printReports(out, checked.reports, checked.via)
}

// printResultJSON is the document of an apply or a down.
func printResultJSON(out *printer, cfg *forward.Config, g *forward.Gateway, plan forward.Plan, res forward.Result, checked checkResult) error {
	doc := applyDoc{changesDoc: newChangesDoc(cfg, g, plan), Failed: res.Failed(), Via: checked.via, Via6: checked.via6}
	if checked.reports != nil {
		doc.Check = viewReports(checked.reports)
	}
	for _, o := range res.Outcomes {
		doc.Changes = append(doc.Changes, viewOutcome(o))
	}
	return out.JSON(doc)
}

// outcomeTable is the table of what an apply or a down did.
func outcomeTable(out *printer, res forward.Result) error {
	t := out.table("RESULT", "RULE", "MAPPING", "TARGET", "NOTE")
	for _, o := range res.Outcomes {
		word, note := o.Change.Action.Past(), o.Note
		if o.Err != nil {
			word, note = "failed", o.Err.Error()
			if o.Change.Action == forward.Conflict {
				word = "conflict"
			}
		}
		t.row(word, o.Change.Rule, o.Change.Key.String(), target(o.Change), note)
	}
	return t.flush()
}

// printDown says what down removed: its own closing line, and no empty
// table when the config owned nothing on the gateway.
func printDown(out *printer, cfg *forward.Config, g *forward.Gateway, plan forward.Plan, res forward.Result, checked checkResult) error {
	if out.json {
		return printResultJSON(out, cfg, g, plan, res, checked)
	}
	if len(res.Outcomes) == 0 {
		out.errf("Down: nothing to remove: no forward on the gateway belongs to this config.\n")
		return nil
	}
	if err := outcomeTable(out, res); err != nil {
		return err
	}
	out.errf("Down: removed %d forward(s), %d failed.\n", res.Made(), res.Failed())
	return nil
}
