package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDaemonReloadBomb sends a running daemon a SIGHUP after its config was
// replaced by the 60-byte merge bomb of issue 11 (which took a load past 3
// GB). The daemon must reject it quickly, naming file, line and key, keep
// reconciling with the config it has, keep /healthz at 200 and its memory
// small, and stop on SIGTERM. It runs the real command line, in a process
// of its own, against the in-memory gateway of the CLI scripts.
func TestDaemonReloadBomb(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "portfwd.yaml")
	writeFile(t, cfg, "rules:\n  - name: web\n    protocol: tcp\n    external_port: 8080\n")
	env := append(os.Environ(), "PORTFWD_TEST_GATEWAY="+filepath.Join(dir, "gateway.json"),
		"PORTFWD_STATE_DIR="+filepath.Join(dir, "state"), "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
	d := startLocalDaemon(t, env, "--check", "200ms", "--interval", "1s", "--metrics", "127.0.0.1:0", "--log-format", "json", cfg)
	d.waitLog(t, "reconciled (start)", 1, 10*time.Second)
	addr := metricsAddr(t, d)

	writeFile(t, cfg, "rules:\n  - &r\n    name: a\n    <<: [*r,*r,*r,*r,*r,*r,*r,*r]\n")
	sent := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	d.waitLog(t, "rejected the new config", 1, 5*time.Second)
	t.Logf("rejected within %v", time.Since(sent).Round(time.Millisecond))
	if want := "portfwd.yaml:4: rules[0].<<: the file expands to more than"; !strings.Contains(d.log.String(), want) {
		t.Errorf("the rejection does not say %q:\n%s", want, d.log)
	}

	waitReconciledAfter(t, addr, time.Now(), 5*time.Second)
	if code, body := httpGet(t, addr, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz after the rejection: %d %s", code, body)
	}
	if hwm := peakRSS(t, d.cmd.Process.Pid); hwm > 200<<20 {
		t.Errorf("the daemon's memory peaked at %d MB", hwm>>20)
	}
	stopped := time.Now()
	if code := d.stop(t); code != 0 || time.Since(stopped) > 5*time.Second {
		t.Errorf("SIGTERM: exit %d after %v, want 0 within 5s", code, time.Since(stopped).Round(time.Millisecond))
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startLocalDaemon runs portfwd daemon args... on this machine, with env,
// until the test ends (SIGTERM). "portfwd" is this test binary
// (testscript.Main in TestMain puts it on PATH), so $PORTFWD_TEST_GATEWAY
// holds its gateway.
func startLocalDaemon(t *testing.T, env []string, args ...string) *daemonProc {
	t.Helper()
	cmd := exec.Command("portfwd", append([]string{"daemon"}, args...)...)
	cmd.Env = env
	return startDaemonCmd(t, cmd, args)
}

// metricsAddr is the address the daemon's JSON log says it serves
// metrics on.
func metricsAddr(t *testing.T, d *daemonProc) string {
	t.Helper()
	d.waitLog(t, `"serving metrics"`, 1, 5*time.Second)
	for _, line := range strings.Split(d.log.String(), "\n") {
		var entry struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "serving metrics" {
			return entry.Addr
		}
	}
	t.Fatalf("no metrics address in the log:\n%s", d.log)
	return ""
}

// waitReconciledAfter waits until the daemon's last reconcile pass ended
// after t0: the loop still runs.
func waitReconciledAfter(t *testing.T, addr string, t0 time.Time, within time.Duration) {
	t.Helper()
	var last float64
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		_, body := httpGet(t, addr, "/metrics")
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(line, "portfwd_last_reconcile_timestamp_seconds "); ok {
				last, _ = strconv.ParseFloat(v, 64)
			}
		}
		if last > float64(t0.UnixMilli())/1e3 {
			return
		}
	}
	t.Errorf("no reconcile pass in the %v after the rejection (last at %.3f, rejected at %.3f)", within, last, float64(t0.UnixMilli())/1e3)
}

func httpGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// peakRSS is the most memory the process pid has held (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int {
	t.Helper()
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
