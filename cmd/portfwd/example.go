package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/portfwd/portfwd/forward"
)

func newCmdExample(f *factory) *cobra.Command {
	return &cobra.Command{
		Use:   "example SERVICE",
		Short: "Print a commented example config for a service of the catalog",
		Long: `example prints a config that forwards SERVICE (a name from portfwd
services) to this PC, with a comment on every key worth changing. Save it
and edit it: it is a valid config as it stands.`,
		Example: `  portfwd example minecraft-java > portfwd.yaml
  portfwd example valheim > ~/.config/portfwd/portfwd.yaml`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return errors.New("name one service, e.g. portfwd example minecraft-java (portfwd services lists them)")
			}
			return nil
		},
		ValidArgsFunction: completeServices,
		RunE: func(_ *cobra.Command, args []string) error {
			b, err := forward.ExampleConfig(args[0])
			if err != nil {
				return err
			}
			_, err = f.IO.Out.Write(b)
			return err
		},
	}
}
