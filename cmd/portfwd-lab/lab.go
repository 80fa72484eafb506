package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"

	"github.com/portfwd/portfwd/internal/lab"
)

func (c *cli) up(args []string) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	igdv1 := fs.Bool("igdv1", false, "advertise IGD:1 / WANIPConnection:1 instead of IGD:2")
	cgnat := fs.Bool("cgnat", false, "WAN in 100.64.0.0/10: miniupnpd refuses every mapping")
	insecure := fs.Bool("insecure", false, "secure_mode=no: allow mappings for other LAN hosts")
	noUPnP := fs.Bool("no-upnp", false, "enable_upnp=no: the router speaks NAT-PMP and PCP only")
	noNATPMP := fs.Bool("no-natpmp", false, "enable_natpmp=no: the router speaks UPnP only")
	thirdParty := fs.Bool("pcp-third-party", false, "pcp_allow_thirdparty=yes")
	ipt := fs.Bool("iptables", false, "no miniupnpd: the router is a Linux box with its own iptables rules, for portfwd's iptables backend")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if old, err := lab.Load(c.state, nil); err == nil && old.Running() {
		return fmt.Errorf("lab %s is already up (%s); run portfwd-lab down first", old.Name, c.state)
	}
	if err := lab.Prerequisites(); err != nil {
		return err
	}
	secure := !*insecure
	l, err := lab.Up(c.ctx, lab.Options{IGDv1: *igdv1, CGNAT: *cgnat, SecureMode: &secure, NoUPnP: *noUPnP,
		NoNATPMP: *noNATPMP, PCPThirdParty: *thirdParty, Iptables: *ipt, Detached: true, Log: c.stderr})
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
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return exitError(ee.ExitCode())
	}
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
