package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/portfwd/portfwd/internal/lab"
)

// upFlags declares up's flags, each setting a field of opts (insecure
// clears SecureMode).
func upFlags(opts *lab.Options, insecure *bool) *flag.FlagSet {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.BoolVar(&opts.IGDv1, "igdv1", false, "advertise IGD:1 / WANIPConnection:1 instead of IGD:2")
	fs.BoolVar(&opts.CGNAT, "cgnat", false, "WAN in 100.64.0.0/10: miniupnpd refuses every mapping")
	fs.BoolVar(insecure, "insecure", false, "secure_mode=no: allow mappings for other LAN hosts")
	fs.BoolVar(&opts.NoUPnP, "no-upnp", false, "enable_upnp=no: the router speaks NAT-PMP and PCP only")
	fs.BoolVar(&opts.NoNATPMP, "no-natpmp", false, "enable_natpmp=no: the router speaks UPnP only")
	fs.BoolVar(&opts.PCPThirdParty, "pcp-third-party", false, "pcp_allow_thirdparty=yes: PCP maps for other LAN hosts")
	fs.BoolVar(&opts.IPv6On, "ipv6-on", false, "leave miniupnpd's IPv6 support on, as Debian and OpenWrt ship it")
	fs.BoolVar(&opts.IPv6, "ipv6", false, "global IPv6 on every host; miniupnpd serves pinholes (WANIPv6FirewallControl) and PCP over IPv6")
	fs.BoolVar(&opts.Iptables, "iptables", false, "no miniupnpd: a Linux router with its own iptables rules (portfwd's iptables backend)")
	fs.BoolVar(&opts.IptablesLegacy, "iptables-legacy", false, "with -iptables: the router's rules in iptables-legacy's tables instead of nf_tables'")
	return fs
}

func (c *cli) up(args []string) error {
	var opts lab.Options
	var insecure bool
	fs := upFlags(&opts, &insecure)
	fs.SetOutput(io.Discard) // exitCode reports the error, with the usage
	if err := fs.Parse(args); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			err = fmt.Errorf("up: %w: %w", err, errUsage)
		}
		return err
	}
	if old, err := lab.Load(c.state, nil); err == nil && old.Running() {
		return fmt.Errorf("lab %s is already up (%s); run portfwd-lab down first", old.Name, c.state)
	}
	if err := lab.Prerequisites(); err != nil {
		return err
	}
	secure := !insecure
	opts.SecureMode, opts.Detached, opts.Log = &secure, true, c.stderr
	l, err := lab.Up(c.ctx, opts)
	if err != nil {
		return err
	}
	if err := l.Save(c.state); err != nil {
		return errors.Join(err, l.Down())
	}
	return c.printEnv(l)
}

func (c *cli) down() error {
	l, err := lab.Load(c.state, c.stderr)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(c.stderr, "no lab (%s does not exist)\n", c.state)
		return nil
	}
	if err != nil {
		return err
	}
	if err := l.Down(); err != nil {
		return err
	}
	return os.Remove(c.state)
}

func (c *cli) reboot() error {
	l, err := c.load()
	if err != nil {
		return err
	}
	if err := l.Reboot(c.ctx); err != nil {
		return err
	}
	return l.Save(c.state) // miniupnpd has a new pid
}

func (c *cli) env() error {
	l, err := c.load()
	if err != nil {
		return err
	}
	return c.printEnv(l)
}

func (c *cli) printEnv(l *lab.Lab) error {
	for _, kv := range l.Env() {
		fmt.Fprintf(c.stdout, "%s=%s\n", kv[0], kv[1])
	}
	return nil
}

// exec runs a command in a namespace with this process's stdio, and exits
// with its status.
func (c *cli) exec(args []string) error {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) < 2 {
		return fmt.Errorf("exec needs a host and a command: %w", errUsage)
	}
	if len(args) > 2 && args[1] == "--" {
		args = append(args[:1], args[2:]...)
	}
	h, err := lab.ParseHost(args[0])
	if err != nil {
		return err
	}
	l, err := c.load()
	if err != nil {
		return err
	}
	cmd := l.Command(h, args[1], args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, c.stdout, c.stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	err = runPassingSignals(cmd, sigs)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return exitError(ee.ExitCode())
	}
	return err
}

// runPassingSignals runs cmd and sends it every signal that arrives on
// sigs until it ends: `portfwd-lab exec lan -- portfwd daemon` stopped by
// a signal to portfwd-lab (timeout -s INT, kill, a supervisor) stops the
// daemon as Ctrl-C would. ip netns exec execs the command, so cmd's
// process is the command itself.
func runPassingSignals(cmd *exec.Cmd, sigs <-chan os.Signal) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	return err
}

func (c *cli) sweep() error { return lab.Sweep(c.stderr) }

// load finds the running lab or says how to start one.
func (c *cli) load() (*lab.Lab, error) {
	l, err := lab.Load(c.state, c.stderr)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no lab (%s does not exist); run portfwd-lab up first", c.state)
	}
	if err == nil && !l.Running() {
		return l, fmt.Errorf("lab %s is not running; run portfwd-lab down, then up", l.Name)
	}
	return l, err
}
