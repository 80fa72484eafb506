package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portfwd/portfwd/internal/lab"
)

// BenchmarkLabDockerStartStop measures, with portfwd daemon --docker on
// the LAN host, the time from `docker start` to the container's forward
// listed on the router (upnpc -l, polled every 20 ms), and from `docker
// stop` to its removal there (which holds the --docker-grace, 2 s by
// default, so that a restart does not flap the router). Medians over
// b.N cycles, beside the docker CLI's own time for the start and the
// stop: -benchtime 10x for issue 15's figures.
func BenchmarkLabDockerStartStop(b *testing.B) {
	l, e := dockerLab(b)
	cfg := writeConfig(b, "name: home\ngateway:\n  backend: upnp\nrules: []\n")
	stop := startBenchDaemon(b, l, e, cfg)
	defer stop()
	runContainer(b, e, "mc", "-p", "25565:8080", "-l", "portfwd.forward=published")
	pollRouter(b, l, "pf:docker:mc", true)
	dockerCLI(b, e, "stop", "mc")
	pollRouter(b, l, "pf:docker:mc", false)
	var up, down, cliStart, cliStop, afterStart, afterStop []time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		dockerCLI(b, e, "start", "mc")
		cliStart = append(cliStart, time.Since(t0))
		pollRouter(b, l, "pf:docker:mc", true)
		up = append(up, time.Since(t0))
		afterStart = append(afterStart, up[len(up)-1]-cliStart[len(cliStart)-1])
		t1 := time.Now()
		dockerCLI(b, e, "stop", "mc")
		cliStop = append(cliStop, time.Since(t1))
		pollRouter(b, l, "pf:docker:mc", false)
		down = append(down, time.Since(t1))
		afterStop = append(afterStop, down[len(down)-1]-cliStop[len(cliStop)-1])
	}
	b.StopTimer()
	b.ReportMetric(ms(median(up)), "start-to-forward-ms")
	b.ReportMetric(ms(median(down)), "stop-to-removed-ms")
	b.ReportMetric(ms(median(cliStart)), "docker-start-cli-ms")
	b.ReportMetric(ms(median(cliStop)), "docker-stop-cli-ms")
	b.ReportMetric(ms(median(afterStart)), "forward-after-start-cli-ms")
	b.ReportMetric(ms(median(afterStop)), "removed-after-stop-cli-ms")
	b.Logf("docker start → forward: median %v of %v; docker stop → removed: median %v of %v (grace 2s)", median(up), up, median(down), down)
}

// startBenchDaemon runs portfwd daemon --docker cfg on the LAN host and
// returns its stop.
func startBenchDaemon(b *testing.B, l *lab.Lab, e *lab.Docker, cfg string) func() {
	b.Helper()
	cmd := l.Command(lab.LAN, binary(b), "daemon", "--docker", cfg)
	cmd.Env = append(labEnv(l), "DOCKER_HOST="+e.Host)
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if b.Failed() {
			b.Logf("portfwd daemon:\n%s", log)
		}
	}
}

// pollRouter waits until the router's listing holds s (present) or not,
// within dockerHang.
func pollRouter(b *testing.B, l *lab.Lab, s string, present bool) {
	b.Helper()
	deadline := time.Now().Add(dockerHang)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, _ := l.CommandContext(ctx, lab.LAN, "upnpc", "-u", l.RootDescURL, "-l").CombinedOutput()
		cancel()
		if strings.Contains(string(out), s) == present {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("after %v the router's listing has %q = %v:\n%s", dockerHang, s, !present, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
