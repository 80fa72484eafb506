package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/probe"
	"github.com/spf13/cobra"
)

type checkOptions struct {
	via   string // probe server URL; overrides probe_server.url
	token string
}

func (o *checkOptions) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.via, "via", "", "probe server (portfwd probe-server) that checks from outside, e.g. https://vps.example:8443")
	cmd.Flags().StringVar(&o.token, "token", "", "the probe server's token")
}

func newCheckCmd(g *globals) *cobra.Command {
	opts := &checkOptions{}
	cmd := &cobra.Command{
		Use:   "check [FILE | SERVICE | tcp/PORT | udp/PORT]",
		Short: "Prove each forward works from outside, in the game's own protocol",
		Long: `check answers "can my friends reach my server?" for every rule of FILE, or
for one service (portfwd check minecraft-java) or port (portfwd check udp/19132)
without a config. For each it checks, in order:

  local    the server answers on the LAN (and, on this machine, which
           process holds the port, or that it listens on 127.0.0.1 only)
  gateway  the router holds the mapping, pointing at the server
  wan      the router's WAN address is public (not carrier-grade NAT)
  outside  a probe server outside your home reaches the server (--via);
           without one, only a hairpin test from inside, a weak signal

and says reachable, unreachable (with the first broken layer and the fix),
or inconclusive. Exit code 4 when a rule is unreachable.`,
		Example: `  portfwd check
  portfwd check minecraft.yaml --via https://vps.example:8443
  portfwd check minecraft-java
  portfwd check udp/19132 -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			g.inspect = true
			return runCheck(cmd.Context(), g, args, opts)
		},
	}
	opts.flags(cmd)
	return cmd
}

func runCheck(ctx context.Context, g *globals, args []string, opts *checkOptions) error {
	cfg, err := g.checkConfig(ctx, args)
	if err != nil {
		return err
	}
	return g.withGateway(ctx, cfg, func(ctx context.Context, s *session) error {
		reports, via, err := g.check(ctx, cfg, s, opts)
		if err != nil {
			return err
		}
		if g.json() {
			err = g.writeJSON(checkDoc{FormatVersion: formatVersion, Gateway: viewGateway(s), Via: via, Rules: viewReports(reports)})
		} else {
			err = g.printReports(reports, via)
		}
		if err == nil && unreachable(reports) {
			return withCode(exitUnreachable, nil)
		}
		return err
	})
}

// check runs the layered diagnosis of cfg's rules through s, and returns
// the reports and the probe server used ("" for none).
func (g *globals) check(ctx context.Context, cfg *forward.Config, s *session, opts *checkOptions) ([]probe.Report, string, error) {
	targets := probe.Targets(cfg, s.self)
	c := &probe.Checker{Gateway: s.backend, Self: s.self}
	via, token := cfg.ProbeServer.URL, cfg.ProbeServer.Token
	if opts.via != "" {
		via, token = opts.via, opts.token
	}
	if via != "" {
		if err := forward.CheckProbeServerURL(via); err != nil {
			return nil, "", fmt.Errorf("--via: %w", err)
		}
		c.Vantage = probe.RemoteVantage{URL: via, Token: token}
	}
	if g.io.Terminal {
		fmt.Fprintf(g.io.ErrOut, "checking %d rule(s)…\n", len(targets))
	}
	return c.Check(ctx, targets), via, nil
}

// checkConfig is the config named by args: a file, or a one-off question
// about a catalog service or a protocol/port.
func (g *globals) checkConfig(ctx context.Context, args []string) (*forward.Config, error) {
	if len(args) == 1 {
		if r, ok := oneOffRule(args[0]); ok {
			gw, err := g.gatewaySettings(forward.GatewaySettings{Backend: "auto", Lease: forward.DefaultLease})
			return &forward.Config{Gateway: gw, Rules: []forward.Rule{r}}, err
		}
	}
	return g.loadConfig(ctx, args)
}

var protoPort = regexp.MustCompile(`^(tcp|udp)/([0-9]{1,5})$`)

// oneOffRule reads "minecraft-java" or "udp/19132" as a rule on this
// machine; anything else is a file name.
func oneOffRule(arg string) (forward.Rule, bool) {
	if m := protoPort.FindStringSubmatch(strings.ToLower(arg)); m != nil {
		port, err := strconv.ParseUint(m[2], 10, 16)
		if err != nil || port == 0 {
			return forward.Rule{}, false
		}
		p := forward.PortRange{First: uint16(port), Last: uint16(port)}
		return forward.Rule{Name: m[1] + "-" + m[2], Protocols: []forward.Protocol{forward.Protocol(m[1])},
			External: p, Internal: p, InternalHost: "self", Probe: m[1]}, true
	}
	if svc, ok := forward.LookupService(arg); ok {
		return forward.Rule{Name: svc.Name, Service: svc.Name, Protocols: svc.Protocols,
			External: svc.Ports, Internal: svc.Ports, InternalHost: "self", Probe: svc.Probe}, true
	}
	return forward.Rule{}, false
}

// unreachable reports whether any rule's verdict is unreachable: exit 4.
func unreachable(reports []probe.Report) bool {
	for _, r := range reports {
		if r.Verdict == probe.Unreachable {
			return true
		}
	}
	return false
}
