package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// daemon is a running miniupnpd.
type daemon struct {
	pid int
	// done is closed once this process has reaped miniupnpd. It is nil when
	// miniupnpd is not our child to wait for (detached, or a Lab loaded
	// from a state file); then its pid is polled.
	done chan struct{}
}

// pollInterval is how often readiness and exit are checked: miniupnpd is
// ready in tens of milliseconds, so fixed sleeps would waste most of a test.
const pollInterval = 10 * time.Millisecond

// startMiniupnpd starts miniupnpd in the router namespace and waits until it
// serves its root description to the LAN host.
func (l *Lab) startMiniupnpd(ctx context.Context) error {
	logf, err := os.OpenFile(l.path(logFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening miniupnpd log: %w", err)
	}
	defer logf.Close() // the child has its own copy
	sink, started, err := l.logSink(logf)
	if err != nil {
		return err
	}
	// -d keeps it in the foreground logging to stderr; -P moves the pid
	// file out of /var/run, where a second lab's miniupnpd would find it.
	cmd := l.Command(Router, tool(miniupnpdBin), "-d", "-f", l.path(configFile), "-P", l.path(pidFile))
	cmd.Stdout, cmd.Stderr = sink, sink
	if l.opts.Detached {
		err = l.startDetached(cmd)
	} else {
		err = l.startChild(cmd)
	}
	started()
	if err != nil {
		return fmt.Errorf("starting miniupnpd: %w", err)
	}
	l.logf("lab %s: miniupnpd pid %d, log %s", l.Name, l.daemon.pid, l.path(logFile))
	return l.waitReady(ctx)
}

// startDetached gives miniupnpd its own session, so it survives the exit of
// this process and the terminal's signals.
func (l *Lab) startDetached(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	l.daemon = &daemon{pid: cmd.Process.Pid}
	_ = cmd.Process.Release()
	return nil
}

// startChild ties miniupnpd to this process with PR_SET_PDEATHSIG, so a test
// binary killed by a timeout leaves no daemon behind. The signal fires when
// the forking *thread* exits, so the fork happens on a goroutine that stays
// locked to its thread until miniupnpd has exited. `ip netns exec` execs
// miniupnpd in place, which keeps the death signal.
func (l *Lab) startChild(cmd *exec.Cmd) error {
	d := &daemon{done: make(chan struct{})}
	pid, err := startTied(cmd, d.done)
	if err != nil {
		return err
	}
	d.pid = pid
	l.daemon = d
	return nil
}

// startTied starts cmd from a thread of its own locked for the command's
// life, with PR_SET_PDEATHSIG, so that the child (miniupnpd, dockerd) is
// killed when that thread ends — a test killed by its timeout leaves none
// behind — and returns its pid; done is closed when it has exited.
func startTied(cmd *exec.Cmd, done chan struct{}) (int, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	type result struct {
		pid int
		err error
	}
	started := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		defer close(done)
		if err := cmd.Start(); err != nil {
			started <- result{err: err}
			return
		}
		started <- result{pid: cmd.Process.Pid}
		_ = cmd.Wait()
	}()
	r := <-started
	return r.pid, r.err
}

// waitReady polls miniupnpd from the LAN host — its root description, or
// a NAT-PMP request when UPnP is off — until it answers, exits, or ctx ends.
func (l *Lab) waitReady(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	start := time.Now()
	for {
		if l.answers(ctx) == nil {
			l.logf("lab %s: miniupnpd ready after %v", l.Name, time.Since(start).Round(time.Millisecond))
			return nil
		}
		if !l.daemon.running() {
			return fmt.Errorf("miniupnpd exited; its log:\n%s", l.MiniupnpdLog())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for miniupnpd at %s: %w; its log:\n%s", l.RootDescURL, ctx.Err(), l.MiniupnpdLog())
		case <-time.After(pollInterval):
		}
	}
}

func (d *daemon) running() bool {
	if d.done != nil {
		select {
		case <-d.done:
			return false
		default:
			return true
		}
	}
	return alive(d.pid) && isMiniupnpd(d.pid)
}

// isMiniupnpd guards against killing an unrelated process that reused the
// pid recorded in a state file. Right after the start the process may still
// be `ip netns exec`, about to exec miniupnpd.
func isMiniupnpd(pid int) bool {
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	name := strings.TrimSpace(string(comm))
	return err == nil && (name == miniupnpdBin || name == "ip")
}

// stopMiniupnpd sends SIGTERM (miniupnpd then removes its pid file), and
// SIGKILL after 3 s.
func (l *Lab) stopMiniupnpd() error {
	d := l.daemon
	if d == nil || !d.running() {
		l.daemon = nil
		return nil
	}
	l.daemon = nil
	if err := syscall.Kill(d.pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stopping miniupnpd %d: %w", d.pid, err)
	}
	if d.wait(3 * time.Second) {
		return nil
	}
	_ = syscall.Kill(d.pid, syscall.SIGKILL)
	if !d.wait(3 * time.Second) {
		return fmt.Errorf("miniupnpd %d survived SIGKILL", d.pid)
	}
	return nil
}

// wait reports whether miniupnpd exited within timeout.
func (d *daemon) wait(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for d.running() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollInterval)
	}
	return true
}

// answers asks miniupnpd one question from the LAN host.
func (l *Lab) answers(ctx context.Context) error {
	if !l.opts.NoUPnP {
		_, err := l.get(ctx, LAN, l.RootDescURL)
		return err
	}
	return l.Do(LAN, func() error {
		// NAT-PMP external address request (RFC 6886 §3.2): version 0, opcode 0.
		c, err := net.Dial("udp", netip.AddrPortFrom(l.RouterLAN, 5351).String())
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Write([]byte{0, 0}); err != nil {
			return err
		}
		_, err = c.Read(make([]byte, 16))
		return err
	})
}

// RootDesc fetches miniupnpd's root device description from the LAN host.
func (l *Lab) RootDesc(ctx context.Context) (string, error) {
	body, err := l.get(ctx, LAN, l.RootDescURL)
	return string(body), err
}

// get is an HTTP GET from host h. The socket must be created on the thread
// Do switched into h, which http.Client cannot promise (it dials on other
// goroutines), so the connection is dialled in Do and the request written
// by hand.
func (l *Lab) get(ctx context.Context, h Host, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Close = true
	var conn net.Conn
	err = l.Do(h, func() (err error) {
		conn, err = (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", req.URL.Host)
		return err
	})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if err := req.Write(conn); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, err
}
