package main

import (
	"github.com/spf13/cobra"

	"github.com/portfwd/portfwd/forward"
)

func newCmdSchema(f *factory) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the config file's JSON schema, for editors",
		Long: `schema prints the JSON schema (draft 2020-12) of portfwd's config file:
every key with its documentation, the values each takes, and no other key.
Editors that use the YAML language server (VS Code's YAML extension, Neovim,
Helix …) complete and check a config whose first line names it:

  # yaml-language-server: $schema=/usr/share/portfwd/portfwd.schema.json

The Debian package installs it there; configs/portfwd.schema.json in the
source holds the same.`,
		Example: `  portfwd schema > ~/.config/portfwd/portfwd.schema.json`,
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := f.IO.Out.Write(forward.Schema())
			return err
		},
	}
}
