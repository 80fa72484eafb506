package main

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/probe"
)

// vantageFlags are --via, its token and its certificate authority: the
// probe server that checks from outside, overriding the config's
// probe_server.
type vantageFlags struct {
	// Via is the probe server's URL, or two: one that reaches it over
	// IPv4 and one over IPv6 (an IPv6 literal), for a server without a
	// name that has both.
	Via       []string
	Token     string
	TokenFile string
	CA        string              // PEM file of the authorities --via's certificate chains to
	getenv    func(string) string // reads $PORTFWD_PROBE_TOKEN; nil reads nothing
}

func (v *vantageFlags) flags(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&v.Via, "via", nil, "probe server (portfwd probe-server) that checks from outside, e.g. https://vps.example:8443; give it twice, with an IPv4 and an IPv6 address, for a server whose name has not both")
	cmd.Flags().StringVar(&v.Token, "token", "", "the probe server's token; visible in ps, prefer --token-file or "+probeTokenEnv)
	cmd.Flags().StringVar(&v.TokenFile, "token-file", "", "read the probe server's token from this file (its first line)")
	cmd.Flags().StringVar(&v.CA, "via-ca", "", "trust the probe server's certificate if it chains to one in this PEM file (a self-signed one), instead of the system's authorities")
	v.getenv = os.Getenv
}

// vantage is the probe server to ask, from the flags, else the config's:
// "" when there is none. Its token is --token or --token-file, else
// $PORTFWD_PROBE_TOKEN, else the config's (unless --via replaced its URL).
func (v vantageFlags) vantage(ps forward.ProbeServer) (probe.RemoteVantage, error) {
	rv := probe.RemoteVantage{URL: ps.URL}
	if len(v.Via) > 0 {
		var err error
		if rv.URL, rv.URL6, err = viaURLs(v.Via); err != nil {
			return rv, err
		}
		ps.Token = ""
	}
	if rv.URL == "" {
		return rv, nil
	}
	env := ""
	if v.getenv != nil {
		env = v.getenv(probeTokenEnv)
	}
	token, err := probeToken(v.Token, v.TokenFile, env)
	if rv.Token = cmp.Or(token, ps.Token); err != nil {
		return rv, err
	}
	rv.RootCAs, err = readCA(v.CA)
	return rv, err
}

// viaURLs reads --via: one URL for both address families, or two, one of
// them with an IPv6 literal, which the requests over IPv6 go to (url6).
func viaURLs(via []string) (url, url6 string, err error) {
	for _, u := range via {
		if err := forward.CheckProbeServerURL(u); err != nil {
			return "", "", fmt.Errorf("--via: %w", err)
		}
	}
	switch {
	case len(via) == 1:
		return via[0], "", nil
	case len(via) == 2 && isIPv6URL(via[0]) != isIPv6URL(via[1]):
		if isIPv6URL(via[0]) {
			return via[1], via[0], nil
		}
		return via[0], via[1], nil
	}
	return "", "", fmt.Errorf("--via given %d times: give the probe server's URL once, or twice with an IPv4 address (or a name) and an IPv6 address, e.g. --via http://192.0.2.8:8443 --via http://[2001:db8::8]:8443", len(via))
}

// isIPv6URL reports whether u names its host by an IPv6 address.
func isIPv6URL(u string) bool {
	parsed, err := url.Parse(u)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(parsed.Hostname())
	return err == nil && forward.FamilyOf(a) == forward.IPv6
}

// readCA is the pool of the certificates in the PEM file path; nil (the
// system's) when path is "".
func readCA(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--via-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("--via-ca %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// checkOptions is everything check needs, resolved from flags.
type checkOptions struct {
	gatewayRun
	Vantage vantageFlags
	Docker  dockerFlags // --docker: the containers' forwards too
}

// checkLong is check's --help: the layers it checks, and its exit codes.
const checkLong = `check answers "can my friends reach my server?" for every rule of FILE, or
for one service (portfwd check minecraft-java) or port (portfwd check udp/19132)
without a config. For each it checks, in order:

  local    the server answers on the LAN (and, on this machine, which
           process holds the port, or that it listens on 127.0.0.1 only)
  gateway  the router holds the mapping, pointing at the server
  wan      the router's WAN address is public (not carrier-grade NAT)
  outside  a probe server outside your home reaches the server (--via);
           without one, only a hairpin test from inside, a weak signal

and says reachable, unreachable (with the first broken layer and the fix),
or inconclusive. A rule with family: ipv6 or dual is checked over IPv6 too:
the server listens on IPv6 (not on 0.0.0.0 only), the router holds the
pinhole, the address is global, and the probe server, asked over IPv6 from
that address, reaches it. Give --via twice (an IPv4 and an IPv6 address)
for a probe server without a name that has both.

Exit code 4 when a rule is unreachable, 5 when the probe server could not
be asked (unreachable, over IPv6 too for an IPv6 rule, or it refused the
token).`

func newCmdCheck(f *factory, runF func(context.Context, *checkOptions) error) *cobra.Command {
	opts := &checkOptions{}
	cmd := &cobra.Command{
		Use:   "check [FILE | SERVICE | tcp/PORT | udp/PORT]",
		Short: "Prove each forward works from outside, in the game's own protocol",
		Long:  checkLong,
		Example: `  portfwd check
  portfwd check minecraft.yaml --via https://vps.example:8443
  portfwd check minecraft-java
  portfwd check udp/19132 -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.gatewayRun = f.checkRun(args, &opts.Docker)
			return runOr(cmd.Context(), runF, runCheck, opts)
		},
	}
	opts.Vantage.flags(cmd)
	opts.Docker.flags(cmd, false)
	return cmd
}

// checkRun is check's gatewayRun: the config of its argument, then,
// with --docker, the containers'.
func (f *factory) checkRun(args []string, docker *dockerFlags) gatewayRun {
	r := f.gatewayRun(accessRead, false, func(ctx context.Context) (*forward.Config, error) {
		return f.checkConfig(ctx, args)
	})
	r.Docker = docker
	return r
}

type checkDoc struct {
	FormatVersion int          `json:"format_version"`
	Gateway       gatewayView  `json:"gateway"`
	Via           string       `json:"via,omitempty"`  // the probe server asked
	Via6          string       `json:"via6,omitempty"` // its URL for IPv6, when another
	Rules         []reportView `json:"rules"`
}

func runCheck(ctx context.Context, opts *checkOptions) error {
	return opts.run(ctx, func(ctx context.Context, cfg *forward.Config, g *forward.Gateway) error {
		if !opts.Out.json {
			opts.Out.gatewayLine(g) // before the progress: the gateway is found
		}
		checked, err := runChecks(ctx, cfg, g, opts.Vantage, opts.Out.progress())
		if err != nil {
			return err
		}
		if opts.Out.json {
			err = opts.Out.JSON(checkDoc{FormatVersion: formatVersion, Gateway: viewGateway(g), Via: checked.via, Via6: checked.via6, Rules: viewReports(checked.reports)})
		} else {
			err = printReports(opts.Out, checked.reports, checked.via)
		}
		if err == nil && unreachable(checked.reports) {
			return withCode(exitUnreachable, nil)
		}
		if err == nil {
			err = notChecked(checked.reports)
		}
		return err
	})
}

// notChecked is the error when the probe server could not be asked: the
// verdicts are inconclusive, but a check that could not run must not
// pass a script (exit 5). When it was asked over one address family and
// not over the other, it names the family that could not run.
func notChecked(reports []probe.Report) error {
	var failed *probe.Report
	for i, r := range reports {
		if r.VantageErr != nil {
			failed = &reports[i]
			break
		}
	}
	if failed == nil {
		return nil
	}
	for _, r := range reports {
		if r.VantageErr == nil && r.Family() != failed.Family() {
			return withCode(exitNotChecked, fmt.Errorf("the check over %s could not run: %w", familyName(failed.Family()), failed.VantageErr))
		}
	}
	return withCode(exitNotChecked, fmt.Errorf("nothing was checked from outside: %w", failed.VantageErr))
}

// familyName is "IPv4" or "IPv6", as people write them.
func familyName(f forward.Family) string {
	if f == forward.IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// runChecks runs the layered diagnosis of cfg's rules through g, from the
// probe server --via names, else the config's. A line of progress goes
// to progress, when not nil.
func runChecks(ctx context.Context, cfg *forward.Config, g *forward.Gateway, v vantageFlags, progress io.Writer) (checkResult, error) {
	targets := probe.Targets(cfg, g.Hosts())
	c := &probe.Checker{Gateway: g.Backend, Self: g.Self, Self6: g.Self6}
	rv, err := v.vantage(cfg.ProbeServer)
	if err != nil {
		return checkResult{}, err
	}
	via := rv.URL
	if via != "" {
		c.Vantage = rv
	}
	if progress != nil && len(targets) > 0 {
		fmt.Fprintf(progress, "checking %d rule(s)…\n", len(targets))
	}
	reports := c.Check(ctx, targets)
	if err := ctx.Err(); err != nil {
		return checkResult{}, fmt.Errorf("checking: %w", err) // the silence the layers saw was the interruption
	}
	return checkResult{reports: reports, via: via, via6: rv.URL6}, nil
}

// checkConfig is the config named by args: a file, or a one-off question
// about a catalog service or a protocol/port.
func (f *factory) checkConfig(ctx context.Context, args []string) (*forward.Config, error) {
	if len(args) == 1 {
		if r, ok := oneOffRule(args[0]); ok {
			return f.optionalConfig(ctx, nil, r)
		}
		if _, err := os.Stat(args[0]); errors.Is(err, os.ErrNotExist) {
			return nil, badCheckArg(args[0])
		}
	}
	return f.loadConfig(ctx, args)
}

// badCheckArg says what check took arg for, when it is no file, service
// or protocol/port, and what it accepts.
func badCheckArg(arg string) error {
	const forms = "check takes a config FILE, a SERVICE (portfwd services lists them), tcp/PORT or udp/PORT, e.g. portfwd check minecraft-java or portfwd check udp/19132"
	if m := protoPortLoose.FindStringSubmatch(strings.ToLower(arg)); m != nil {
		return fmt.Errorf("check %s: taken as a protocol/port, but port %s is out of range (1-65535); %s", arg, m[2], forms)
	}
	hint := ""
	if s := forward.SuggestService(arg); s != "" {
		hint = " (did you mean " + s + "?)"
	}
	return fmt.Errorf("check %s: taken as a config file, but there is no such file, nor a service of that name%s; %s", arg, hint, forms)
}

// protoPortLoose is tcp/PORT or udp/PORT with any number, to say why one
// out of range is refused.
var protoPortLoose = regexp.MustCompile(`^(tcp|udp)/([0-9]+)$`)

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
			External: p, Internal: p, InternalHost: "self", Probe: forward.ProbeKind(m[1])}, true
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
