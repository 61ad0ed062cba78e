package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// world is the lab of lab.sh that the tests of this package share: one world, brought up by
// TestMain, with the gateway under test running at muc. Tests change it (they kill and restart the
// gateway, move the home router, block ports); each test starts with standard, which brings it to
// the standard world, and leaves it so when it ends, in whatever order the tests run.
type world struct {
	bench   string // this directory, holding lab.sh
	dir     string // FOBL_DIR: the lab's state, keys and logs
	bin     string // FOBL_BIN: fobgw, wireguard-go, labweb
	gateway string // "fobgw", or "stock" to run the same tests against the stock recipe
	iface   string // the gateway's WireGuard interface at muc

	stdConf string // the standard gateway's fobgw.conf (fobgw only)
	stdPID  int    // the standard gateway's pid: another pid is a gateway a test started
}

// cmdTimeout bounds every command a test runs, so that a hung tool fails the test instead of
// hanging the package.
const cmdTimeout = 60 * time.Second

// command is exec.CommandContext made safe to wait for: the child gets its own process group,
// all of which the timeout kills, and Wait gives up on pipes that a grandchild (a process lab.sh
// started) still holds open, instead of waiting for it past the timeout.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (w *world) env() []string {
	return append(os.Environ(), "FOBL_DIR="+w.dir, "FOBL_BIN="+w.bin)
}

// stdEnv is the environment of lab.sh's standard gateway: none of the variables with which tests
// vary it, whatever the test process's environment holds.
var stdEnv = []string{"FOBL_GW_EXTRA=", "FOBL_ENDPOINTS=", "FOBL_GW_WAIT=", "FOBL_GW_CGROUP="}

// labRun runs `bash lab.sh ARGS...` with extra environment env (later entries win) and returns
// its combined output.
func (w *world) labRun(env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*cmdTimeout)
	defer cancel()
	cmd := command(ctx, "bash", append([]string{filepath.Join(w.bench, "lab.sh")}, args...)...)
	cmd.Env = append(w.env(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s lab.sh %s: %w\n%s", strings.Join(env, " "), strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// lab runs lab.sh and fails the test if it fails.
func (w *world) lab(tb testing.TB, args ...string) string {
	tb.Helper()
	return w.labEnv(tb, nil, args...)
}

// labEnv is lab with extra environment for lab.sh (FOBL_GW_EXTRA, FOBL_ENDPOINTS, FOBL_GW_WAIT,
// FOBL_GW_CGROUP).
func (w *world) labEnv(tb testing.TB, env []string, args ...string) string {
	tb.Helper()
	out, err := w.labRun(env, args...)
	if err != nil {
		tb.Fatalf("%v\ngateway log:\n%s", err, w.gatewayLog())
	}
	return out
}

// standard brings the lab to the standard world, the one TestMain made: every knob of lab.sh as
// `up` set it, the home router at its first address, the gateway under test running with the
// lab's own configuration, started by standard or TestMain, and the client through to web. It
// registers a cleanup that leaves the world so after the test (after the test's own cleanups) and,
// if the test failed, logs the lab's state first.
func (w *world) standard(tb testing.TB) {
	tb.Helper()
	w.restore(tb)
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("the lab when the test ended:\n%s", w.diagnosis())
		}
		w.restore(tb)
	})
}

// restore brings the lab back to the standard world where it differs from it.
func (w *world) restore(tb testing.TB) {
	tb.Helper()
	drift := w.drift()
	if len(drift) == 0 {
		return
	}
	tb.Logf("restoring the standard world: %s", strings.Join(drift, "; "))
	w.lab(tb, "reset")
	w.labEnv(tb, stdEnv, "gw", w.gateway, "auto")
	w.stdPID = w.gatewayPID(tb)
	if drift := w.drift(); len(drift) > 0 {
		tb.Fatalf("the lab is not the standard world after restoring it: %s\n%s", strings.Join(drift, "; "), w.diagnosis())
	}
}

// drift says how the lab differs from the standard world; nothing when it is the standard world.
func (w *world) drift() []string {
	var d []string
	if out, err := w.labRun(nil, "drift"); err != nil {
		d = append(d, err.Error())
	} else if out = strings.TrimSpace(out); out != "" {
		d = append(d, strings.Split(out, "\n")...)
	}
	if mode, err := os.ReadFile(filepath.Join(w.dir, "gw.mode")); err != nil || strings.TrimSpace(string(mode)) != w.gateway {
		d = append(d, fmt.Sprintf("the gateway at muc is %q (%v), not %s", bytes.TrimSpace(mode), err, w.gateway))
	}
	b, err := os.ReadFile(filepath.Join(w.dir, "gw.pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	switch {
	case err != nil || pid == 0 || !alive(pid):
		d = append(d, "no gateway runs")
	case pid != w.stdPID:
		d = append(d, fmt.Sprintf("the gateway (pid %d) was started by a test", pid))
	}
	if w.gateway == "fobgw" {
		if conf, err := os.ReadFile(filepath.Join(w.dir, "fobgw.conf")); err != nil || string(conf) != w.stdConf {
			d = append(d, "the gateway's fobgw.conf is not the lab's own")
		}
	}
	if len(d) > 0 {
		return d
	}
	// The tunnel answering: a handshake may be under way (a rekey, an endpoint that moved back), so
	// give it a few seconds; polling is the wait, the lab announces nothing.
	var got string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) { // polling: see above
		if got, err = publicAddress("client"); err == nil && got == begFirst {
			return nil
		}
		if time.Now().After(deadline) {
			return []string{fmt.Sprintf("the client is not through the home router: web sees %q (%v)", got, err)}
		}
	}
}

// diagnosis is what a failed test leaves for its reader: the lab's status, what differs from the
// standard world, and the end of the gateway's log.
func (w *world) diagnosis() string {
	var b strings.Builder
	status, err := w.labRun(nil, "status")
	fmt.Fprintf(&b, "lab.sh status (%v):\n%s\n", err, status)
	fmt.Fprintf(&b, "differs from the standard world: %q\n", w.drift())
	fmt.Fprintf(&b, "the gateway's log (%s) ends with:\n%s", filepath.Join(w.dir, "gw.log"), w.gatewayLog())
	return b.String()
}

// gatewayLog is the tail of the gateway's log, for failure messages.
func (w *world) gatewayLog() string {
	b, err := os.ReadFile(filepath.Join(w.dir, "gw.log"))
	if err != nil {
		return fmt.Sprintf("(no gateway log: %v)", err)
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// nsName is the name of the lab namespace NAME: lab.sh's prefix (FOBL_NS, default fobl) and NAME.
func nsName(name string) string {
	if p := os.Getenv("FOBL_NS"); p != "" {
		return p + "-" + name
	}
	return "fobl-" + name
}

// wgName is the name of a lab's WireGuard interface (fobgw0, wgstock0 or begwg0) under lab.sh's
// prefix: the names themselves with the default prefix, the prefix and gw0, stk0 or beg0 with
// another (their UAPI sockets share the machine's /var/run/wireguard).
func wgName(name string) string {
	p := os.Getenv("FOBL_NS")
	if p == "" || p == "fobl" {
		return name
	}
	return p + map[string]string{"fobgw0": "gw0", "wgstock0": "stk0", "begwg0": "beg0"}[name]
}

// ns runs a command inside the lab namespace NAME (nsName) and returns its combined output.
func ns(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := command(ctx, "ip", append([]string{"netns", "exec", nsName(name)}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// mustNS is ns failing the test on error.
func mustNS(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := ns(name, args...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// waitFor polls cond every 100 ms until it returns nil, and fails the test with cond's last
// error when timeout passes. It returns how long it waited. The conditions are states of processes
// in the lab's namespaces (a route, a download, a status), which announce nothing: polling them is
// the wait on the event.
func waitFor(tb testing.TB, desc string, timeout time.Duration, cond func() error) time.Duration {
	tb.Helper()
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			tb.Fatalf("%s: still not true after %v: %v", desc, timeout, err)
		}
		time.Sleep(100 * time.Millisecond) // polling is the wait: see above
	}
}

// fileString is the trimmed content of a lab file (keys, the current home address).
func (w *world) fileString(tb testing.TB, name string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(w.dir, name))
	if err != nil {
		tb.Fatalf("read lab file: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// begAddress is beg's current public address (begFirst in the standard world; it moves in
// TestHomeAddressChange).
func (w *world) begAddress(tb testing.TB) string { return w.fileString(tb, "beg.addr") }

// gatewayPID is the pid of the gateway process at muc.
func (w *world) gatewayPID(tb testing.TB) int {
	tb.Helper()
	pid, err := strconv.Atoi(w.fileString(tb, "gw.pid"))
	if err != nil {
		tb.Fatalf("gateway pid file: %v", err)
	}
	return pid
}

// alive reports whether pid is a running process (a zombie counts as dead).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// publicAddress is the address web sees for a request made from namespace name.
func publicAddress(name string) (string, error) {
	out, err := ns(name, "curl", "-fsS", "--max-time", "3", "http://203.0.113.80/ip")
	return strings.TrimSpace(out), err
}

// dig queries server for name's A record from namespace from and returns the answers.
func dig(from, server, name string, tcp bool) ([]string, error) {
	args := []string{"dig", "+short", "+time=2", "+tries=1", "@" + server, name, "A"}
	if tcp {
		args = append(args, "+tcp")
	}
	out, err := ns(from, args...)
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// counter reads a named nftables counter's packet count in table ip TABLE of namespace name.
func counter(tb testing.TB, name, table, counter string) int {
	tb.Helper()
	out := mustNS(tb, name, "nft", "list", "counter", "ip", table, counter)
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "packets" {
			n, err := strconv.Atoi(f[i+1])
			if err != nil {
				tb.Fatalf("counter %s: %q: %v", counter, f[i+1], err)
			}
			return n
		}
	}
	tb.Fatalf("counter %s: no packet count in %q", counter, out)
	return 0
}

// capture is a tcpdump in a lab namespace waiting for the first packet of a filter.
type capture struct {
	done chan struct{}
	mu   sync.Mutex
	out  strings.Builder // protected by mu
}

// captureFirst starts tcpdump for the first packet matching filter on iface in namespace name
// and returns once tcpdump listens.
func captureFirst(tb testing.TB, name, iface, filter string) *capture {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	cmd := command(ctx, "ip", "netns", "exec", nsName(name), "tcpdump", "-i", iface, "-n", "-l", "-c", "1", filter)
	stdout := startTcpdump(tb, cmd, cancel, fmt.Sprintf("in %s on %s", name, iface))
	c := &capture{done: make(chan struct{})}
	go func() {
		b, _ := io.ReadAll(stdout)
		c.mu.Lock()
		c.out.Write(b)
		c.mu.Unlock()
		_ = cmd.Wait()
		close(c.done)
	}()
	tb.Cleanup(func() {
		cancel()
		<-c.done
	})
	return c
}

// startTcpdump starts cmd, a tcpdump, and returns its standard output once it listens (it says
// so on standard error); where, for messages, says where it captures. cancel ends cmd's context.
func startTcpdump(tb testing.TB, cmd *exec.Cmd, cancel context.CancelFunc, where string) io.Reader {
	tb.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		tb.Fatalf("start tcpdump %s: %v", where, err)
	}
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			if !once && strings.Contains(sc.Text(), "listening on") {
				once = true
				close(listening)
			}
		}
		if !once {
			close(listening)
		}
	}()
	select {
	case <-listening:
	case <-time.After(10 * time.Second):
		cancel()
		tb.Fatalf("tcpdump %s did not start listening", where)
	}
	return stdout
}

// wait returns the captured packet line, or an error if none came within timeout.
func (c *capture) wait(timeout time.Duration) (string, error) {
	select {
	case <-c.done:
	case <-time.After(timeout):
		return "", errors.New("no packet captured")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out.Len() == 0 {
		return "", errors.New("tcpdump ended without a packet")
	}
	return c.out.String(), nil
}

// killGateway kills the lab's gateway with SIGKILL, as a crash would, and waits until it is gone.
func (w *world) killGateway(tb testing.TB) {
	tb.Helper()
	pid := w.gatewayPID(tb)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		tb.Fatalf("kill -9 %d: %v", pid, err)
	}
	waitFor(tb, "the gateway to die", 5*time.Second, func() error {
		if alive(pid) {
			return fmt.Errorf("pid %d alive", pid)
		}
		return nil
	})
}
