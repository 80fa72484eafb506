package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/portfwd/portfwd/forward"
)

// settings are the global flags and PORTFWD_* environment variables,
// resolved once before a command runs (flags win over the environment,
// which wins over the config file's gateway section).
type settings struct {
	Output     string
	Timeout    time.Duration
	Rediscover bool
	// Config is $PORTFWD_CONFIG: the file to use when none is named.
	Config string
	// StateDir holds the run lock and the NAT-PMP/PCP records.
	StateDir string
	// Gateway overrides the config's gateway section where set.
	Gateway gatewayOverrides
}

// gatewayOverrides are --backend, --gateway, --lease, --wan-interface and
// their PORTFWD_GATEWAY_* variables, as given ("" when not).
type gatewayOverrides struct {
	Backend, Address, Lease, WANInterface string
}

// json reports whether -o json was asked for.
func (s settings) json() bool { return s.Output == "json" }

func newCmdRoot(f *factory) *cobra.Command {
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

portfwd only ever changes forwards it made for the file's config (their
description on the router is "pf:<config name>:<rule>"); everything else,
other configs' forwards included, is left alone.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	setVersionFlag(root)
	v := globalFlags(root)
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		s, err := resolveSettings(v)
		if err != nil {
			return err
		}
		f.Settings, f.out.json = s, s.json()
		return nil
	}
	root.AddCommand(newCmdPlan(f, nil), newCmdApply(f, nil), newCmdStatus(f, nil), newCmdDown(f, nil),
		newCmdCheck(f, nil), newCmdProbe(f, nil), newCmdProbeServer(f), newCmdServices(f), newCmdVersion(f),
		newCmdDaemon(f, nil), newCmdExample(f), newCmdSchema(f), newCmdMan())
	registerCompletions(root)
	return root
}

// globalFlags declares the persistent flags and binds them, with their
// PORTFWD_* variables, to the keys resolveSettings reads.
func globalFlags(root *cobra.Command) *viper.Viper {
	fl := root.PersistentFlags()
	fl.StringP("output", "o", "table", "output format: table or json")
	fl.Duration("timeout", 15*time.Second, "how long the gateway may take to answer one request (discovery, each change, each NAT-PMP/PCP exchange), each on its own; "+
		"raise it for a router that is slow with many mappings. A whole run has no time limit: Ctrl-C stops it")
	fl.Bool("rediscover", false, "discover the gateway again, and with backend auto ask every protocol, instead of using what earlier runs remembered")
	fl.String("backend", "", "gateway protocol: auto, upnp, natpmp, pcp, or iptables on the router itself (overrides gateway.backend; env PORTFWD_GATEWAY_BACKEND)")
	fl.String("wan-interface", "", "iptables backend: the router's uplink interface (overrides gateway.wan_interface; default: the default route's; env PORTFWD_GATEWAY_WAN_INTERFACE)")
	fl.String("state-dir", "", "where portfwd keeps its run lock and records the mappings NAT-PMP and PCP cannot list (default /var/lib/portfwd as root, else ~/.local/state/portfwd; env PORTFWD_STATE_DIR)")
	fl.String("gateway", "", "gateway address, skips discovery (overrides gateway.address; env PORTFWD_GATEWAY_ADDRESS)")
	fl.String("lease", "", "lease to request, e.g. 1h; 0 = permanent (overrides gateway.lease; env PORTFWD_GATEWAY_LEASE)")
	v := viper.New()
	v.SetEnvPrefix("PORTFWD")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	for key, flag := range map[string]string{"gateway.backend": "backend", "gateway.address": "gateway", "gateway.lease": "lease",
		"gateway.wan_interface": "wan-interface", "state_dir": "state-dir", "output": "output", "timeout": "timeout",
		"rediscover": "rediscover"} {
		_ = v.BindPFlag(key, fl.Lookup(flag))
	}
	for _, key := range []string{"gateway.backend", "gateway.address", "gateway.lease", "gateway.wan_interface", "state_dir", "config"} {
		_ = v.BindEnv(key)
	}
	return v
}

// resolveSettings reads the flags and environment once into settings,
// and checks what can be checked before any work.
func resolveSettings(v *viper.Viper) (settings, error) {
	s := settings{
		Output: v.GetString("output"), Timeout: v.GetDuration("timeout"), Rediscover: v.GetBool("rediscover"),
		Config: v.GetString("config"), StateDir: v.GetString("state_dir"),
		Gateway: gatewayOverrides{Backend: v.GetString("gateway.backend"), Address: v.GetString("gateway.address"),
			Lease: v.GetString("gateway.lease"), WANInterface: v.GetString("gateway.wan_interface")},
	}
	if s.StateDir == "" {
		s.StateDir = forward.DefaultStateDir()
	}
	if s.Output != "table" && s.Output != "json" {
		return s, fmt.Errorf("--output %q: use table or json", s.Output)
	}
	if s.Timeout <= 0 {
		return s, fmt.Errorf("--timeout %s: must be positive", s.Timeout)
	}
	return s, nil
}
