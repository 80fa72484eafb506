package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/portfwd/portfwd/forward/probe"
	"github.com/spf13/cobra"
)

func newProbeCmd(g *globals) *cobra.Command {
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
			return runProbe(cmd.Context(), g, args[0], probe.Kind(kind))
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

func runProbe(ctx context.Context, g *globals, target string, kind probe.Kind) error {
	if !slices.Contains(probe.Kinds(), kind) {
		return fmt.Errorf("--kind %q: want one of %s", kind, kindList())
	}
	addr, err := resolveTarget(ctx, target)
	if err != nil {
		return err
	}
	res := probe.Run(ctx, kind, addr, probe.Options{Timeout: min(g.timeout, probe.DefaultTimeout)})
	doc := probeDoc{FormatVersion: formatVersion, Kind: string(kind), Address: addr.String(), Answered: res.Answered,
		LatencyMS: float64(res.Latency.Microseconds()) / 1000}
	if res.Answered {
		doc.Info = &res.Info
	} else if res.Err != nil {
		doc.Error = res.Err.Error()
	}
	if err := g.printProbe(doc, res); err != nil {
		return err
	}
	if !res.Answered {
		return withCode(exitUnreachable, nil)
	}
	return nil
}

func (g *globals) printProbe(doc probeDoc, res probe.Result) error {
	if g.json() {
		return g.writeJSON(doc)
	}
	if !res.Answered {
		_, err := fmt.Fprintf(g.io.Out, "%s %s: no: %v\n", doc.Kind, doc.Address, res.Err)
		return err
	}
	r := probe.Report{Verdict: probe.Reachable, Info: &res.Info, Latency: res.Latency}
	_, err := fmt.Fprintf(g.io.Out, "%s %s: answered: %s\n", doc.Kind, doc.Address, detail(r))
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

func newProbeServerCmd(g *globals) *cobra.Command {
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
			fmt.Fprintf(g.io.ErrOut, "probe server listening on %s\n", listen)
			return probe.ListenAndServe(cmd.Context(), listen, s, g.io.ErrOut)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", ":8443", "address to listen on")
	f.StringVar(&s.Token, "token", "", "require this shared token (Authorization: Bearer)")
	f.IntVar(&s.MaxPorts, "max-ports", probe.DefaultMaxPorts, "most ports one request may ask for")
	f.Float64Var(&s.Rate, "rate", probe.DefaultRate, "requests per second allowed from one source address")
	f.IntVar(&s.Burst, "burst", probe.DefaultBurst, "requests one source may make at once before the rate applies")
	f.DurationVar(&s.Timeout, "probe-timeout", 3*time.Second, "deadline of each probe")
	return cmd
}
