package main

import (
	"cmp"
	"fmt"
	"net/netip"
	"strings"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/probe"
)

type reportView struct {
	Rule     string `json:"rule"`
	Probe    string `json:"probe"`
	Family   string `json:"family"`   // ipv4 | ipv6: a dual rule has one report of each
	Mapping  string `json:"mapping"`  // "tcp/25565" on the WAN side, "tcp6/25565" for a pinhole
	Internal string `json:"internal"` // "192.168.1.10:25565", "[2a02:8000:77:1::10]:25565"; "" when this host has no IPv6
	// Address is where friends connect, when known: the router's public
	// address and port, or over IPv6 the server's own global address.
	Address   string      `json:"address,omitempty"`
	Verdict   string      `json:"verdict"` // reachable | unreachable | inconclusive
	Cause     string      `json:"cause,omitempty"`
	Fix       string      `json:"fix,omitempty"`
	LatencyMS float64     `json:"latency_ms,omitempty"`
	Info      *probe.Info `json:"info,omitempty"`
	Layers    []stepView  `json:"layers"`
}

type stepView struct {
	Layer   string `json:"layer"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

func viewReports(reports []probe.Report) []reportView {
	out := []reportView{}
	for _, r := range reports {
		v := reportView{Rule: r.Rule, Probe: string(r.Kind), Family: r.Family().String(), Mapping: r.External.String(),
			Internal: addrPortString(r.Internal), Address: addrPortString(r.Address),
			Verdict: string(r.Verdict), Cause: r.Cause, Fix: r.Fix, Info: r.Info,
			LatencyMS: float64(r.Latency.Microseconds()) / 1000}
		for _, s := range r.Steps {
			v.Layers = append(v.Layers, stepView{Layer: string(s.Layer), Status: string(s.Status), Message: s.Message, Fix: s.Fix})
		}
		out = append(out, v)
	}
	return out
}

// printReports writes one line per rule, then the layers of every rule
// that is not plainly reachable, so the fix is on screen.
func printReports(out *printer, reports []probe.Report, via string) error {
	if len(reports) == 0 {
		out.errf("No rules to check.\n")
		return nil
	}
	t := out.table("RULE", "PROBE", "PORT", "VERDICT", "DETAIL")
	for _, r := range reports {
		t.row(r.Rule, string(r.Kind), r.External.String(), string(r.Verdict), detail(r))
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, r := range reports {
		if r.Verdict != probe.Reachable {
			printLayers(out, r)
		}
	}
	if via == "" {
		out.errf("no probe server: nothing checked from outside (see portfwd check --help, --via)\n")
	}
	return nil
}

// addrPortString is a as text, "" when it is not valid.
func addrPortString(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func printLayers(out *printer, r probe.Report) {
	fmt.Fprintf(out.io.Out, "\n%s (%s -> %s):\n", r.Rule, r.External, cmp.Or(addrPortString(r.Internal), "no IPv6 address"))
	// The layers' messages quote what servers and routers said.
	for _, s := range r.Steps {
		fmt.Fprintf(out.io.Out, "  %-8s %-5s %s\n", s.Layer, s.Status, forward.Printable(s.Message))
		if s.Fix != "" && s.Status == probe.StatusFail {
			fmt.Fprintf(out.io.Out, "  %-8s %-5s fix: %s\n", "", "", forward.Printable(s.Fix))
		}
	}
}

// detail is what the server said when it answered, else the cause.
func detail(r probe.Report) string {
	if r.Verdict != probe.Reachable {
		return forward.Printable(r.Cause)
	}
	var parts []string
	if r.Info != nil {
		if r.Info.Name != "" {
			parts = append(parts, fmt.Sprintf("%q", r.Info.Name))
		}
		if r.Info.MaxPlayers > 0 {
			parts = append(parts, fmt.Sprintf("%d/%d players", r.Info.Players, r.Info.MaxPlayers))
		}
		if r.Info.Version != "" {
			parts = append(parts, r.Info.Version)
		}
		if r.Info.Status != 0 {
			parts = append(parts, fmt.Sprintf("HTTP %d", r.Info.Status))
		}
	}
	if r.Latency > 0 {
		parts = append(parts, r.Latency.Round(100_000).String())
	}
	if r.Family() == forward.IPv6 && r.Address.IsValid() {
		// No NAT: friends connect to the server's own address.
		parts = append(parts, "over IPv6 at "+r.Address.String())
	}
	return forward.Printable(strings.Join(parts, ", ")) // what the server said of itself
}
