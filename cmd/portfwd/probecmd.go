package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/portfwd/portfwd/forward/probe"
	"github.com/spf13/cobra"
)

// probeOptions is everything probe needs, resolved from flags.
type probeOptions struct {
	Out     *printer
	Timeout time.Duration
	Target  string
	Kind    probe.Kind
}

func newCmdProbe(f *factory, runF func(context.Context, *probeOptions) error) *cobra.Command {
	opts := &probeOptions{}
	var kind string
	cmd := &cobra.Command{
		Use:   "probe HOST:PORT",
		Short: "Probe one server from wherever this runs (the \"ask a friend\" mode)",
		Long: `probe speaks one server's own protocol to HOST:PORT and says whether it
answered, with what it said (name, players, version) and the round trip. Send
it to a friend outside your home: what they see is what the internet sees.

Kinds: ` + kindList() + `.`,
		Example: `  portfwd probe 203.0.113.7:25565 --kind minecraft-java
  portfwd probe my.home.example:19132 --kind minecraft-bedrock -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Out, opts.Timeout, opts.Target, opts.Kind = f.out, f.Settings.Timeout, args[0], probe.Kind(kind)
			return runOr(cmd.Context(), runF, runProbe, opts)
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "tcp", "probe kind: "+kindList())
	return cmd
}

func kindList() string {
	var ks []string
	for _, k := range probe.Kinds() {
		ks = append(ks, string(k))
	}
	return strings.Join(ks, ", ")
}

type probeDoc struct {
	FormatVersion int         `json:"format_version"`
	Kind          string      `json:"kind"`
	Address       string      `json:"address"`
	Answered      bool        `json:"answered"`
	LatencyMS     float64     `json:"latency_ms,omitempty"`
	Info          *probe.Info `json:"info,omitempty"`
	Error         string      `json:"error,omitempty"`
}

func runProbe(ctx context.Context, opts *probeOptions) error {
	if !opts.Kind.Known() {
		return fmt.Errorf("--kind %q: want one of %s", opts.Kind, kindList())
	}
	addr, err := resolveTarget(ctx, opts.Target)
	if err != nil {
		return err
	}
	res := probe.Run(ctx, opts.Kind, addr, probe.Options{Timeout: min(opts.Timeout, probe.DefaultTimeout)})
	doc := probeDoc{FormatVersion: formatVersion, Kind: string(opts.Kind), Address: addr.String(), Answered: res.Answered,
		LatencyMS: float64(res.Latency.Microseconds()) / 1000}
	if res.Answered {
		doc.Info = &res.Info
	} else if res.Err != nil {
		doc.Error = res.Err.Error()
	}
	if err := printProbe(opts.Out, doc, res); err != nil {
		return err
	}
	if !res.Answered {
		return withCode(exitUnreachable, nil)
	}
	return nil
}

func printProbe(out *printer, doc probeDoc, res probe.Result) error {
	if out.json {
		return out.JSON(doc)
	}
	if !res.Answered {
		_, err := fmt.Fprintf(out.io.Out, "%s %s: no: %v\n", doc.Kind, doc.Address, res.Err)
		return err
	}
	r := probe.Report{Verdict: probe.Reachable, Info: &res.Info, Latency: res.Latency}
	_, err := fmt.Fprintf(out.io.Out, "%s %s: answered: %s\n", doc.Kind, doc.Address, detail(r))
	return err
}

// resolveTarget accepts HOST:PORT with an IPv4 address or a name.
func resolveTarget(ctx context.Context, s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: want HOST:PORT", s)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolving %s: %v", host, err)
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(addrs[0].Unmap().String(), port))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: bad port", s)
	}
	return ap, nil
}

func newCmdProbeServer(f *factory) *cobra.Command {
	s := &probe.Server{}
	var listen string
	cmd := &cobra.Command{
		Use:   "probe-server",
		Short: "Serve outside checks for portfwd check --via (run it on a VPS or a friend's machine)",
		Long: `probe-server answers portfwd check from outside your home: it probes the
ports a request names, on the address the request came from, and on no other
address, so it cannot be used to scan or flood anyone else. Requests are
limited in ports, rate per source address and time. Put it behind TLS (or
use a token over a trusted network).`,
		Example: `  portfwd probe-server --listen :8443 --token "$(cat /etc/portfwd/token)"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(f.IO.ErrOut, "probe server listening on %s\n", listen)
			return probe.ListenAndServe(cmd.Context(), listen, s, f.IO.ErrOut)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&listen, "listen", ":8443", "address to listen on")
	fl.StringVar(&s.Token, "token", "", "require this shared token (Authorization: Bearer)")
	fl.IntVar(&s.MaxPorts, "max-ports", probe.DefaultMaxPorts, "most ports one request may ask for")
	fl.Float64Var(&s.Rate, "rate", probe.DefaultRate, "requests per second allowed from one source address")
	fl.IntVar(&s.Burst, "burst", probe.DefaultBurst, "requests one source may make at once before the rate applies")
	fl.DurationVar(&s.Timeout, "probe-timeout", 3*time.Second, "deadline of each probe")
	return cmd
}
