package main

import (
	"fmt"
	"strings"

	"github.com/portfwd/portfwd/forward"
	"github.com/spf13/cobra"
)

func newServicesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "services",
		Short: "List the services a rule can name with service:",
		Long: `services lists the catalog of well-known and self-hosted services. A rule
that names one (service: minecraft-java) gets its protocol, ports and
reachability probe filled in; keys written in the rule override them.`,
		Example: `  portfwd services
  portfwd services -o json | jq -r '.services[].name'`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return g.printServices() },
	}
}

type serviceView struct {
	Name        string   `json:"name"`
	Protocols   []string `json:"protocols"`
	Ports       string   `json:"ports"`
	Probe       string   `json:"probe"`
	Description string   `json:"description"`
}

func (g *globals) printServices() error {
	var views []serviceView
	for _, s := range forward.Services() {
		v := serviceView{Name: s.Name, Ports: s.Ports.String(), Probe: s.Probe, Description: s.Description}
		for _, p := range s.Protocols {
			v.Protocols = append(v.Protocols, string(p))
		}
		views = append(views, v)
	}
	if g.json() {
		return g.writeJSON(struct {
			FormatVersion int           `json:"format_version"`
			Services      []serviceView `json:"services"`
		}{formatVersion, views})
	}
	t := g.newTable("NAME", "PROTOCOL", "PORTS", "PROBE", "DESCRIPTION")
	for _, v := range views {
		t.row(v.Name, strings.Join(v.Protocols, "+"), v.Ports, v.Probe, v.Description)
	}
	return t.flush()
}

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print portfwd's version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if g.json() {
				return g.writeJSON(map[string]any{"format_version": formatVersion, "version": version})
			}
			_, err := fmt.Fprintln(g.io.Out, "portfwd", version)
			return err
		},
	}
}
