package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/internal/lab"
)

// The Docker lab tests run an engine on the LAN host (lab.StartDocker),
// containers of the lab's own image (labserver FROM scratch), and portfwd
// daemon --docker beside them, and prove from the WAN host what the
// containers' labels ask for.

// dockerLab is a lab with an engine on its LAN host and the lab image
// built.
func dockerLab(t testing.TB) (*lab.Lab, *lab.Docker) {
	t.Helper()
	l := lab.ForTest(t, lab.Options{})
	e := l.StartDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.BuildImage(ctx); err != nil {
		t.Fatal(err)
	}
	return l, e
}

// dockerCLI runs the docker CLI against the lab's engine.
func dockerCLI(t testing.TB, e *lab.Docker, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := e.Docker(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runContainer starts a container of the lab image named name, with the
// docker run options opts (-p, -l).
func runContainer(t testing.TB, e *lab.Docker, name string, opts ...string) {
	t.Helper()
	args := append([]string{"run", "-d", "--name", name, "-e", "NAME=" + name}, opts...)
	dockerCLI(t, e, append(args, lab.LabImage)...)
}

// startDockerDaemon runs portfwd daemon --docker cfg on the LAN host,
// with the lab engine as DOCKER_HOST.
func startDockerDaemon(t *testing.T, l *lab.Lab, e *lab.Docker, args ...string) *daemonProc {
	t.Helper()
	args = append([]string{"--docker"}, args...)
	cmd := l.Command(lab.LAN, binary(t), append([]string{"daemon"}, args...)...)
	cmd.Env = append(labEnv(l), "DOCKER_HOST="+e.Host)
	return startDaemonCmd(t, cmd, args)
}

// dockerHang bounds every wait of the Docker lab tests: a hang detector,
// not a timing claim (the timings are logged, and measured by
// BenchmarkLabDocker).
const dockerHang = 60 * time.Second

// waitRouter waits until the router's listing (upnpc -l) holds a line
// containing s (or, with !present, none), and returns how long it took.
func waitRouter(t *testing.T, l *lab.Lab, s string, present bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		h := routerHolds(t, l)
		if strings.Contains(h, s) == present {
			return time.Since(start)
		}
		if time.Since(start) > dockerHang {
			t.Fatalf("after %v the router's listing has %q = %v, want %v:\n%s", dockerHang, s, !present, present, h)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantGreeting connects from the WAN host to the router's port and wants
// the greeting of the container name.
func wantGreeting(t *testing.T, l *lab.Lab, port int, name string) {
	t.Helper()
	got, err := fromWAN(l, "tcp", port)
	if err != nil || !strings.Contains(got, "labserver "+name+" ") {
		t.Errorf("tcp/%d from the WAN: %q, %v; want the greeting of container %s", port, got, err, name)
	}
}

// TestLabDockerDaemon is issue 15's acceptance: beside a file rule and a
// foreign mapping, containers with portfwd.forward labels are forwarded
// and reachable from the WAN host, one without a label is not, a stopped
// container's forward goes and comes back with it, and the file's rule
// and the foreign mapping stay throughout.
func TestLabDockerDaemon(t *testing.T) {
	l, e := dockerLab(t)
	upnpc(t, l, "-e", "someone else", "-a", l.LANHost.String(), "3074", "3074", "UDP")
	cfg := writeConfig(t, "name: home\ngateway:\n  backend: upnp\nrules:\n  - name: web\n    protocol: tcp\n    external_port: 8443\n")
	d := startDockerDaemon(t, l, e, "--check", "1s", cfg)
	d.waitLog(t, "created web tcp/8443", 1, dockerHang)
	d.waitLog(t, "docker: 0 container forward(s) to keep", 1, dockerHang)
	stays := func(when string) {
		t.Helper()
		if h := routerHolds(t, l); !strings.Contains(h, "pf:home:web") || !strings.Contains(h, "someone else") {
			t.Errorf("%s: the file's rule and the foreign mapping must stay:\n%s", when, h)
		}
	}

	runContainer(t, e, "plain", "-p", "27000:8080")
	runContainer(t, e, "mc", "-p", "25565:8080", "-l", "portfwd.forward=published")
	t.Logf("docker run mc → forward on the router: %v", waitRouter(t, l, "pf:docker:mc", true))
	wantGreeting(t, l, 25565, "mc")
	runContainer(t, e, "game", "-p", "26001:8080", "-l", "portfwd.forward=26000:26001/tcp")
	t.Logf("docker run game → forward on the router: %v", waitRouter(t, l, "pf:docker:game", true))
	wantGreeting(t, l, 26000, "game")
	d.waitLog(t, "docker: container plain: start", 1, dockerHang)
	if h := routerHolds(t, l); strings.Contains(h, "27000") || strings.Contains(h, "plain") {
		t.Errorf("the container without a label must not be forwarded:\n%s", h)
	}
	stays("with the containers up")

	dockerCLI(t, e, "stop", "mc")
	t.Logf("docker stop mc → forward removed: %v", waitRouter(t, l, "pf:docker:mc", false))
	if _, err := fromWAN(l, "tcp", 25565); err == nil {
		t.Errorf("tcp/25565 still answers from the WAN after its container stopped")
	}
	stays("after the stop")
	dockerCLI(t, e, "start", "mc")
	t.Logf("docker start mc → forward back: %v", waitRouter(t, l, "pf:docker:mc", true))
	wantGreeting(t, l, 25565, "mc")
	if h := routerHolds(t, l); !strings.Contains(h, "pf:docker:game") {
		t.Errorf("the other container's forward must stay:\n%s", h)
	}
	stays("after the restart")
	d.waitLog(t, "reconciled (containers changed)", 3, dockerHang)
}

// TestLabDockerOneShot: apply, plan, status and down with --docker, run
// from a timer instead of the daemon: apply forwards the labelled
// container beside the file's rule, a container removed meanwhile loses
// its forward at the next apply, a wrong label is named and skipped,
// down removes the file's and the containers' forwards, and the foreign
// mapping stays.
func TestLabDockerOneShot(t *testing.T) {
	l, e := dockerLab(t)
	env := []string{"DOCKER_HOST=" + e.Host}
	upnpc(t, l, "-e", "someone else", "-a", l.LANHost.String(), "3074", "3074", "UDP")
	cfg := writeConfig(t, "name: home\ngateway:\n  backend: upnp\nrules:\n  - name: web\n    protocol: tcp\n    external_port: 8443\n")
	runContainer(t, e, "mc", "-p", "25565:8080", "-l", "portfwd.forward=published")
	runContainer(t, e, "typo", "-p", "26001:8080", "-l", "portfwd.forward=26000:26001/tpc")

	r := portfwdIn(t, l, lab.LAN, env, "apply", "--docker", "--no-probe", cfg)
	if r.code != exitOK || !strings.Contains(r.stderr, `container typo: label portfwd.forward="26000:26001/tpc"`) {
		t.Errorf("apply --docker: exit %d, want 0 and the typo named on stderr", r.code)
	}
	if h := routerHolds(t, l); !strings.Contains(h, "pf:home:web") || !strings.Contains(h, "pf:docker:mc") || strings.Contains(h, "26000") {
		t.Errorf("after apply --docker the router should hold the file's rule and mc's, not typo's:\n%s", h)
	}
	wantGreeting(t, l, 25565, "mc")
	if r := portfwdIn(t, l, lab.LAN, env, "check", "--docker", cfg); !strings.Contains(r.stdout, "mc\ttcp\ttcp/25565") {
		t.Errorf("check --docker should check the container's rule mc too")
	}
	if r := portfwdIn(t, l, lab.LAN, env, "plan", "--docker", "--detailed-exitcode", cfg); r.code != exitOK {
		t.Errorf("plan --docker right after apply: exit %d, want 0 (nothing to change)", r.code)
	}

	dockerCLI(t, e, "rm", "-f", "mc") // while no portfwd runs
	if r := portfwdIn(t, l, lab.LAN, env, "plan", "--docker", "--detailed-exitcode", cfg); r.code != exitPending {
		t.Errorf("plan --docker after the container went: exit %d, want %d", r.code, exitPending)
	}
	portfwdIn(t, l, lab.LAN, env, "apply", "--docker", "--no-probe", cfg)
	if h := routerHolds(t, l); strings.Contains(h, "pf:docker:mc") || !strings.Contains(h, "pf:home:web") {
		t.Errorf("the forward of a container removed meanwhile must go, the file's stay:\n%s", h)
	}
	st := portfwdIn(t, l, lab.LAN, env, "status", "--docker", cfg)
	if st.code != exitOK {
		t.Errorf("status --docker: exit %d", st.code)
	}
	runContainer(t, e, "mc2", "-p", "25566:8080", "-l", "portfwd.forward=published")
	portfwdIn(t, l, lab.LAN, env, "apply", "--docker", "--no-probe", cfg)
	if r := portfwdIn(t, l, lab.LAN, env, "down", "--docker", cfg); r.code != exitOK {
		t.Errorf("down --docker: exit %d", r.code)
	}
	if h := routerHolds(t, l); strings.Contains(h, "pf:") || !strings.Contains(h, "someone else") {
		t.Errorf("after down --docker only the foreign mapping should stay:\n%s", h)
	}
}
