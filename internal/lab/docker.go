package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Docker is a Docker engine (Debian's docker.io, dockerd) running on the
// lab's LAN host, as on a home server: its containers publish ports on the
// LAN host's address, and it writes its own NAT rules in that namespace.
type Docker struct {
	// Host is the engine's DOCKER_HOST (unix://…/docker.sock).
	Host string
	dir  string
	done chan struct{}
	pid  int
}

// DockerBridge is the engine's bridge subnet (--bip): clear of the lab's
// LAN, so nothing the router routes collides with it.
const DockerBridge = "172.31.77.1/24"

// LabImage is the tag of the image BuildImage builds.
const LabImage = "portfwd-lab-server"

// dockerReady bounds the engine's start: measured here, under a second.
const dockerReady = 60 * time.Second

// StartDocker starts an engine on the LAN host for t and stops it when t
// ends. Without dockerd the test fails when PORTFWD_LAB=1 or CI=true
// (make test installs docker.io), and is skipped elsewhere.
func (l *Lab) StartDocker(t testing.TB) *Docker {
	t.Helper()
	if _, err := lookPath("dockerd"); err != nil {
		why := "dockerd not found (package docker.io): DEBIAN_FRONTEND=noninteractive apt-get install -y docker.io"
		if os.Getenv("PORTFWD_LAB") == "1" || os.Getenv("CI") == "true" {
			t.Fatalf("%s (PORTFWD_LAB=1 or CI=true: make test installs it)", why)
		}
		t.Skip(why)
	}
	d, err := l.startDocker(context.Background())
	if err != nil {
		t.Fatalf("lab docker: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dockerd log:\n%s", d.Log())
		}
		if err := d.Stop(); err != nil {
			t.Errorf("stopping dockerd: %v", err)
		}
	})
	return d
}

// startDocker runs dockerd in the LAN host's namespace. nsenter, not ip
// netns exec: the latter remounts /sys, and dockerd then stops with
// "Devices cgroup isn't mounted". The storage driver is vfs (no overlay
// inside this machine's file system).
func (l *Lab) startDocker(ctx context.Context) (*Docker, error) {
	dir := l.path("docker")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	d := &Docker{Host: "unix://" + filepath.Join(dir, "docker.sock"), dir: dir, done: make(chan struct{})}
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(tool("nsenter"), "--net=/run/netns/"+l.Namespace(LAN), tool("dockerd"),
		"--storage-driver", "vfs", "--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"-H", d.Host, "--pidfile", filepath.Join(dir, "docker.pid"), "--bip", DockerBridge, "--userland-proxy=false")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := d.start(cmd); err != nil {
		return nil, fmt.Errorf("starting dockerd: %w", err)
	}
	l.logf("lab %s: dockerd on the LAN host, %s", l.Name, d.Host)
	return d, d.waitReady(ctx)
}

// start ties dockerd to this process (PR_SET_PDEATHSIG, as miniupnpd in
// startChild) so that a test killed by its timeout leaves no engine.
func (d *Docker) start(cmd *exec.Cmd) error {
	pid, err := startTied(cmd, d.done)
	d.pid = pid
	return err
}

// waitReady polls `docker version` until the engine answers.
func (d *Docker) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, dockerReady)
	defer cancel()
	for {
		if err := d.Command(ctx, "version").Run(); err == nil {
			return nil
		}
		select {
		case <-d.done:
			return fmt.Errorf("dockerd exited; its log:\n%s", d.Log())
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("waiting for dockerd: %w; its log:\n%s", ctx.Err(), d.Log()), d.Stop())
		case <-time.After(pollInterval):
		}
	}
}

// Command is the docker CLI talking to this engine.
func (d *Docker) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, tool("docker"), args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.Host, "DOCKER_BUILDKIT=0")
	return cmd
}

// Docker runs the docker CLI and returns its trimmed output.
func (d *Docker) Docker(ctx context.Context, args ...string) (string, error) {
	out, err := d.Command(ctx, args...).CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return s, fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, s)
	}
	return s, nil
}

// Log is dockerd's log so far.
func (d *Docker) Log() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "dockerd.log"))
	return string(b)
}

// Stop removes every container, stops dockerd (SIGTERM, then SIGKILL after
// 20 s) and removes its data. Idempotent.
func (d *Docker) Stop() error {
	select {
	case <-d.done:
	default:
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if ids, err := d.Docker(ctx, "ps", "-aq"); err == nil && ids != "" {
			_, _ = d.Docker(ctx, append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
		}
		cancel()
		_ = syscall.Kill(d.pid, syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(d.pid, syscall.SIGKILL)
			<-d.done
		}
	}
	return os.RemoveAll(d.dir)
}

// BuildImage builds LabImage: labserver, static, in an image FROM scratch
// (no registry is reachable from the lab).
func (d *Docker) BuildImage(ctx context.Context) error {
	ctxDir := filepath.Join(d.dir, "image")
	if err := os.MkdirAll(ctxDir, 0o700); err != nil {
		return err
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(ctxDir, "labserver"), "github.com/portfwd/portfwd/internal/lab/labserver")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building labserver: %w: %s", err, out)
	}
	df := "FROM scratch\nCOPY labserver /labserver\nEXPOSE 8080\nENTRYPOINT [\"/labserver\"]\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o600); err != nil {
		return err
	}
	_, err := d.Docker(ctx, "build", "-q", "-t", LabImage, ctxDir)
	return err
}

// Pid is dockerd's process id.
func (d *Docker) Pid() string { return strconv.Itoa(d.pid) }
