package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

// globals are the settings every command shares, resolved by viper from
// flags, PORTFWD_* environment variables and the config file's gateway
// section (in that order of precedence).
type globals struct {
	io         IOStreams
	v          *viper.Viper
	output     string
	timeout    time.Duration
	rediscover bool
	// enableForwarding is apply's and daemon's --enable-forwarding: the
	// iptables backend turns net.ipv4.ip_forward on instead of failing.
	enableForwarding bool
	// inspect is set by the commands that only read the gateway (plan,
	// status, check) and by down: a router that could not forward yet is
	// a warning.
	inspect bool
	// wroteJSON is set once a command has printed its JSON document, so a
	// failure after it (a partial apply) does not print a second one.
	wroteJSON bool
}

func newGlobals(io IOStreams) *globals { return &globals{io: io, v: viper.New()} }

func newRootCmd(g *globals) *cobra.Command {
	io := g.io
	root := &cobra.Command{
		Use:   "portfwd",
		Short: "Keep your router's port forwards equal to a YAML file",
		Long: `portfwd keeps a home router's port forwards equal to a YAML file.

Write the forwards you want (a Minecraft server, a Valheim world, SSH) in
portfwd.yaml, then:

  portfwd plan     show what would change on the router
  portfwd apply    make the router match the file
  portfwd status   show every forward on the router, yours and others'
  portfwd down     remove every forward the file owns

portfwd only ever changes forwards it made itself (their description on the
router starts with "portfwd:"); everything else is left alone.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return g.validate()
		},
	}
	root.SetOut(io.Out)
	root.SetErr(io.ErrOut)
	f := root.PersistentFlags()
	f.StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	f.DurationVar(&g.timeout, "timeout", 15*time.Second, "give up on the gateway after this long")
	f.BoolVar(&g.rediscover, "rediscover", false, "discover the gateway again instead of using the one remembered from the last run")
	f.String("backend", "", "gateway protocol: auto, upnp, natpmp, pcp, or iptables on the router itself (overrides gateway.backend; env PORTFWD_GATEWAY_BACKEND)")
	f.String("wan-interface", "", "iptables backend: the router's uplink interface (overrides gateway.wan_interface; default: the default route's; env PORTFWD_GATEWAY_WAN_INTERFACE)")
	f.String("state-dir", "", "where portfwd records the mappings NAT-PMP and PCP cannot list (default /var/lib/portfwd as root, else ~/.local/state/portfwd; env PORTFWD_STATE_DIR)")
	f.String("gateway", "", "gateway address, skips discovery (overrides gateway.address; env PORTFWD_GATEWAY_ADDRESS)")
	f.String("lease", "", "lease to request, e.g. 1h; 0 = permanent (overrides gateway.lease; env PORTFWD_GATEWAY_LEASE)")
	bindViper(g.v, root)
	root.AddCommand(newPlanCmd(g), newApplyCmd(g), newStatusCmd(g), newDownCmd(g), newCheckCmd(g), newProbeCmd(g),
		newProbeServerCmd(g), newServicesCmd(g), newVersionCmd(g), newDaemonCmd(g))
	return root
}

// bindViper wires flags and PORTFWD_* environment variables to the gateway
// keys of the config file, so one lookup honours all three.
func bindViper(v *viper.Viper, root *cobra.Command) {
	v.SetEnvPrefix("PORTFWD")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for key, flag := range map[string]string{"gateway.backend": "backend", "gateway.address": "gateway", "gateway.lease": "lease",
		"gateway.wan_interface": "wan-interface"} {
		_ = v.BindPFlag(key, root.PersistentFlags().Lookup(flag))
		_ = v.BindEnv(key)
	}
	_ = v.BindEnv("config")
	_ = v.BindPFlag("state_dir", root.PersistentFlags().Lookup("state-dir"))
	_ = v.BindEnv("state_dir")
}

func (g *globals) validate() error {
	if g.output != "table" && g.output != "json" {
		return fmt.Errorf("--output %q: use table or json", g.output)
	}
	if g.timeout <= 0 {
		return fmt.Errorf("--timeout %s: must be positive", g.timeout)
	}
	return nil
}

func (g *globals) json() bool { return g.output == "json" }

// withGateway connects to the gateway cfg names and runs fn, all under
// --timeout.
func (g *globals) withGateway(ctx context.Context, cfg *forward.Config, fn func(context.Context, *session) error) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	s, err := g.connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.close()
	err = fn(ctx, s)
	if s.warnings != nil {
		for _, w := range s.warnings() {
			fmt.Fprintln(g.io.ErrOut, "warning:", w)
		}
	}
	return err
}
