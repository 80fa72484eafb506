package main

import (
	"strings"

	"github.com/portfwd/portfwd/forward"
	"github.com/spf13/cobra"
)

func newCmdServices(f *factory) *cobra.Command {
	return &cobra.Command{
		Use:   "services",
		Short: "List the services a rule can name with service:",
		Long: `services lists the catalog of well-known and self-hosted services. A rule
that names one (service: minecraft-java) gets its protocol, ports and
reachability probe filled in; keys written in the rule override them.`,
		Example: `  portfwd services
  portfwd services -o json | jq -r '.services[].name'`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return printServices(f.out) },
	}
}

type serviceView struct {
	Name        string   `json:"name"`
	Protocols   []string `json:"protocols"`
	Ports       string   `json:"ports"`
	Probe       string   `json:"probe"`
	Description string   `json:"description"`
}

func printServices(out *printer) error {
	var views []serviceView
	for _, s := range forward.Services() {
		v := serviceView{Name: s.Name, Ports: s.Ports.String(), Probe: string(s.Probe), Description: s.Description}
		for _, p := range s.Protocols {
			v.Protocols = append(v.Protocols, string(p))
		}
		views = append(views, v)
	}
	if out.json {
		return out.JSON(struct {
			FormatVersion int           `json:"format_version"`
			Services      []serviceView `json:"services"`
		}{formatVersion, views})
	}
	t := out.table("NAME", "PROTOCOL", "PORTS", "PROBE", "DESCRIPTION")
	for _, v := range views {
		t.row(v.Name, strings.Join(v.Protocols, "+"), v.Ports, v.Probe, v.Description)
	}
	return t.flush()
}
