package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/docker"
)

// dockerFlags are --docker and its companions, shared by daemon, apply,
// plan, status and down.
type dockerFlags struct {
	On    bool
	Grace time.Duration
	// Engine connects to the engine; nil means docker.NewEngine (tests
	// hand in a fake).
	Engine func() (docker.Engine, error)
}

func (f *dockerFlags) flags(cmd *cobra.Command, daemon bool) {
	cmd.Flags().BoolVar(&f.On, "docker", false, "also forward what running Docker containers ask for with portfwd.* labels (engine: DOCKER_HOST, else /var/run/docker.sock)")
	if daemon {
		cmd.Flags().DurationVar(&f.Grace, "docker-grace", docker.DefaultGrace, "keep a stopped container's forwards this long, so a restart does not flap the router")
	}
}

// source is the Docker rule source for the file's config cfg.
func (f *dockerFlags) source(cfg *forward.Config) (*docker.Source, error) {
	if cfg.Name == docker.DefaultOwner {
		return nil, fmt.Errorf("the config is named %q, the name of the containers' forwards (pf:%s:<container>): give the file another name: with --docker", cfg.Name, cfg.Name)
	}
	open := f.Engine
	if open == nil {
		open = docker.NewEngine
	}
	e, err := open()
	if err != nil {
		return nil, err
	}
	return &docker.Source{Engine: e, Gateway: cfg.Gateway, ProbeServer: cfg.ProbeServer, Grace: f.Grace}, nil
}

// runDocker runs the containers' own loop beside the file's, on the same
// dialer (each pass holds the run lock, so the two never change the
// router at once), until ctx ends. It starts once the engine answered:
// until then there is nothing to compare the router with, and an empty
// config would remove the containers' forwards.
func (d *daemon) runDocker(ctx context.Context, obs forward.Observer, wg *sync.WaitGroup) error {
	src, err := d.opts.Docker.source(d.current.Load())
	if err != nil {
		return err
	}
	first := make(chan *forward.Config, 1)
	loop := d.dockerLoop(obs)
	var started atomic.Bool
	w := &docker.Watcher{Source: src, Logf: d.logf, Warnf: d.warnf, Update: func(cfg *forward.Config) {
		d.containers.Store(cfg)
		if started.CompareAndSwap(false, true) {
			first <- cfg
			return
		}
		loop.Update(cfg, forward.JobSource)
	}}
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case loop.Config = <-first:
			d.logf("docker: %d container forward(s) to keep", len(loop.Config.Rules))
			_ = loop.Run(ctx)
		case <-ctx.Done():
		}
	}()
	go w.Run(ctx)
	return nil
}

// dockerLoop is the reconcile loop of the containers' config: it always
// prunes, since a container that is gone must lose its forward.
func (d *daemon) dockerLoop(obs forward.Observer) *forward.Loop {
	o := d.opts
	return &forward.Loop{Connect: d.dialer.Connect, Prune: true,
		Interval: o.Interval, Check: o.Check, PassTimeout: passLimit, CleanupOnExit: o.Cleanup,
		Observer: obs, Logf: func(format string, a ...any) { d.logf("docker: "+format, a...) }}
}

// ruleUnion merges the rule states of several loops (the file's and the
// containers') for an observer that expects one loop's: the metrics
// replace every rule's series on each report.
type ruleUnion struct {
	mu    sync.Mutex
	parts [][]forward.RuleState
	next  forward.Observer
}

// part is the observer for the i-th loop.
func (u *ruleUnion) part(i int) forward.Observer { return unionPart{u, i} }

type unionPart struct {
	u *ruleUnion
	i int
}

// Reconciled implements forward.Observer.
func (p unionPart) Reconciled(r forward.ReconcileReport) {
	p.u.mu.Lock()
	defer p.u.mu.Unlock()
	for len(p.u.parts) <= p.i {
		p.u.parts = append(p.u.parts, nil)
	}
	if r.Err == nil || len(r.Rules) > 0 {
		p.u.parts[p.i] = r.Rules
	}
	var all []forward.RuleState
	for _, part := range p.u.parts {
		all = append(all, part...)
	}
	r.Rules = all
	p.u.next.Reconciled(r)
}

// GatewayUnreachable implements forward.Observer.
func (p unionPart) GatewayUnreachable(err error, retryIn time.Duration) {
	p.u.next.GatewayUnreachable(err, retryIn)
}

// once is the containers' part of a one-shot command (apply, plan, status,
// down with --docker): it reads the engine once and runs fn for the
// containers' config on g, after the file's run, whose error fileErr
// was. The file's error wins the exit code; the containers' run prints
// a second table or JSON document of its own.
func (f *dockerFlags) once(ctx context.Context, out *printer, file *forward.Config, g *forward.Gateway,
	fn func(context.Context, *forward.Config, *forward.Gateway) error, fileErr error) error {
	src, err := f.source(file)
	if err != nil {
		return errors.Join(fileErr, err)
	}
	snap, err := src.Read(ctx)
	if err != nil {
		return errors.Join(fileErr, err)
	}
	for _, p := range snap.Problems {
		out.errf("warning: docker: %s\n", forward.Printable(p.Error()))
	}
	if !out.json {
		out.errf("Docker containers (%d forward(s), tagged pf:%s:<container>):\n", len(snap.Config.Rules), snap.Config.Name)
	}
	if err := fn(ctx, snap.Config, g); fileErr == nil {
		return err
	}
	return fileErr
}
