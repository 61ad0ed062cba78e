package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests of issue 20: the home router's WireGuard restarts (same key, no session, no memory of
// the FOB's endpoint, so only the FOB can start again).

const (
	// rekeyTimeout is WireGuard's REKEY_TIMEOUT: no two handshake initiations closer than this.
	rekeyTimeout = 5 * time.Second
	// probeInterval is the gateway's health probe interval (gateway.ProbeInterval).
	probeInterval = 3 * time.Second
)

// TestHomeReboot: with the client pinging web every 20 ms (a video call's pace; the first reply
// after home is back is the measure, so its resolution must be small against the bound), home's
// WireGuard restarts; the client is through home again within 5 s of home being back (its
// interface up and configured), in each of 5 runs. Each run starts with a session older than
// REKEY_TIMEOUT, as a home router that reboots at a random time finds it 115 s of the 120
// between rekeys, and older by a random part of the probe interval, so that the restarts fall
// at random points of the gateway's 3 s probe cycle (a fixed point would measure one case 5
// times: each run's session starts at the gateway's handshake, which the probes time).
func TestHomeReboot(t *testing.T) {
	healthGateway(t)
	const (
		runs = 5
		// bar: REKEY_TIMEOUT, the spacing of initiations WireGuard keeps and the kick too, is the
		// worst case when a try falls into home's absence; on top of it the handshake's round
		// trip, the client's 20 ms ping grid and this shared machine's scheduler (0.3 s under a
		// load of 8 seen here). A run over 5 s is logged as such.
		bar = 5*time.Second + 300*time.Millisecond
	)
	t.Cleanup(func() { restoreHome(t) })
	p := startPing(t)
	kicks0 := lab.kicks(t)
	var took []time.Duration
	for i := range runs {
		older := rekeyTimeout + rand.N(probeInterval)
		waitFor(t, "a session older than REKEY_TIMEOUT, the client through", 30*time.Second, func() error {
			if age := handshakeAge(t); age <= older {
				return fmt.Errorf("the last handshake is %v old, want %v", age, older)
			}
			if !p.repliedSince(time.Now().Add(-time.Second)) {
				return fmt.Errorf("no ping reply in the last second")
			}
			return nil
		})
		out := lab.lab(t, "beg-restart")
		gone, back := begAt(t, out, "down"), begAt(t, out, "back")
		first, err := p.firstAfter(back, 30*time.Second)
		if err != nil {
			t.Fatalf("run %d: %v\ngateway log:\n%s", i+1, err, lab.gatewayLog())
		}
		d := first.Sub(back)
		took = append(took, d)
		t.Logf("run %d: the client through home %v after home was back (home was away %v)", i+1, d.Round(time.Millisecond), back.Sub(gone).Round(time.Millisecond))
	}
	t.Logf("home back -> client through, %d runs: %v (max %v)", runs, roundAll(took), slices.Max(took).Round(time.Millisecond))
	for i, d := range took {
		if d > 5*time.Second {
			t.Logf("run %d: %v is past REKEY_TIMEOUT (a try fell into home's absence), within the bar's slack", i+1, d.Round(time.Millisecond))
		}
		if d > bar {
			t.Errorf("run %d: the client was through %v after home was back, want within %v", i+1, d.Round(time.Millisecond), bar)
		}
	}
	// The gateway started the handshakes: status and metrics count them alike.
	kicks := lab.kicks(t)
	if kicks-kicks0 < 1 {
		t.Errorf("status handshake_kicks went from %d to %d over %d home restarts, want it to count the handshakes started", kicks0, kicks, runs)
	}
	if m := lab.metrics(t)["fobgw_handshake_kicks_total"]; uint64(m) < kicks {
		t.Errorf("metric fobgw_handshake_kicks_total = %v, status said %d just before", m, kicks)
	}
}

// TestHomeDownInitiations: home's WireGuard is down for 60 s while the client keeps sending; the
// WAN towards home carries at most one handshake initiation per REKEY_TIMEOUT, as WireGuard's own
// timers would send. Then home comes back (as rebooted) and the client is through again.
//
// The tolerance: wireguard-go refuses an initiation within REKEY_TIMEOUT of the last one it sent,
// judged before it builds the message; tcpdump stamps each when it leaves net for beg. A gap on
// the wire can therefore be shorter than 5 s by the delay of the earlier message between that
// check and the wire (the handshake's crypto, a syscall, the scheduler of this shared 2-core
// machine): 100 ms is far above that (well under a millisecond when idle) and far below the
// jitter WireGuard adds (up to 334 ms, only ever longer).
func TestHomeDownInitiations(t *testing.T) {
	healthGateway(t)
	const (
		down      = 60 * time.Second
		tolerance = 100 * time.Millisecond
	)
	t.Cleanup(func() { restoreHome(t) })
	p := startPing(t)
	c := captureInitiations(t, lab.begAddress(t))
	start := time.Now()
	lab.lab(t, "beg-stop")
	time.Sleep(down) // the outage itself: the time home is away
	back := begAt(t, lab.lab(t, "beg-start"), "back")
	first, err := p.firstAfter(back, 30*time.Second)
	if err != nil {
		t.Fatalf("after %v down: %v", down, err)
	}
	t.Logf("after %v down, the client was through %v after home was back", down, first.Sub(back).Round(time.Millisecond))
	at := c.stop(t)
	var during []time.Time
	for _, x := range at {
		if x.After(start) && x.Before(back) {
			during = append(during, x)
		}
	}
	var gaps []time.Duration
	for i := 1; i < len(during); i++ {
		gaps = append(gaps, during[i].Sub(during[i-1]))
	}
	t.Logf("%d handshake initiations on the WAN in %v down; gaps %v", len(during), back.Sub(start).Round(time.Millisecond), roundAll(gaps))
	// Control: the capture sees them (WireGuard alone sends one per 5-5.3 s once it retries).
	if len(during) < 5 {
		t.Errorf("only %d handshake initiations captured in %v: the capture does not see them", len(during), down)
	}
	if most := int(back.Sub(start)/rekeyTimeout) + 1; len(during) > most {
		t.Errorf("%d handshake initiations in %v, want at most %d (one per %v)", len(during), back.Sub(start).Round(time.Millisecond), most, rekeyTimeout)
	}
	for i, g := range gaps {
		if g < rekeyTimeout-tolerance {
			t.Errorf("initiations %d and %d are %v apart, want at least %v (less %v)", i+1, i+2, g.Round(time.Millisecond), rekeyTimeout, tolerance)
		}
	}
}

// restoreHome starts beg's WireGuard when a test left it stopped, and waits for the client to
// be through home.
func restoreHome(tb testing.TB) {
	lab.lab(tb, "beg-start")
	waitFor(tb, "the client through home", 45*time.Second, func() error {
		got, err := publicAddress("client")
		if err != nil {
			return err
		}
		if got != lab.begAddress(tb) {
			return fmt.Errorf("web sees the client from %s", got)
		}
		return nil
	})
}

// begAt is the moment beg-stop or beg-start reported home "down" or "back".
func begAt(tb testing.TB, out, what string) time.Time {
	tb.Helper()
	m := regexp.MustCompile(`beg ` + what + ` at ([0-9]+\.[0-9]+)`).FindStringSubmatch(out)
	if m == nil {
		tb.Fatalf("lab.sh did not say when home was %s:\n%s", what, out)
	}
	return epoch(tb, m[1])
}

// epoch parses seconds since 1970 with a fraction.
func epoch(tb testing.TB, s string) time.Time {
	tb.Helper()
	sec, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		tb.Fatalf("time %q: %v", s, err)
	}
	frac = (frac + "000000000")[:9]
	ns, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		tb.Fatalf("time %q: %v", s, err)
	}
	return time.Unix(n, ns)
}

// handshakeAge is the age of the gateway's last handshake with home (wg show at muc).
func handshakeAge(tb testing.TB) time.Duration {
	tb.Helper()
	f := strings.Fields(mustNS(tb, "muc", "wg", "show", lab.iface, "latest-handshakes"))
	if len(f) < 2 {
		tb.Fatalf("wg show %s latest-handshakes: %q", lab.iface, f)
	}
	s, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || s == 0 {
		return 0
	}
	return time.Since(time.Unix(s, 0))
}

// kicks is the gateway's handshake_kicks in `fobgw status -json`.
func (w *world) kicks(tb testing.TB) uint64 {
	tb.Helper()
	out := mustNS(tb, "muc", filepath.Join(w.bin, "fobgw"), "status", "-json", "-config", filepath.Join(w.dir, "fobgw.conf"))
	var st struct {
		HandshakeKicks uint64 `json:"handshake_kicks"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		tb.Fatalf("fobgw status -json: %v\n%s", err, out)
	}
	return st.HandshakeKicks
}

// pinger is a ping from the client to web every 20 ms, noting when each reply arrived.
type pinger struct {
	mu      sync.Mutex
	replies []time.Time // protected by mu
	news    chan struct{}
}

var pingReplyRE = regexp.MustCompile(`^\[([0-9]+\.[0-9]+)\] .* bytes from `)

func startPing(tb testing.TB) *pinger {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", nsName("client"), "ping", "-n", "-D", "-i", "0.02", "-W", "1", "203.0.113.80")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		tb.Fatalf("start ping in the client: %v", err)
	}
	p := &pinger{news: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			m := pingReplyRE.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			sec, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				continue
			}
			at := time.Unix(0, int64(sec*1e9))
			p.mu.Lock()
			p.replies = append(p.replies, at)
			p.mu.Unlock()
			select {
			case p.news <- struct{}{}:
			default:
			}
		}
		_ = cmd.Wait()
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
	})
	return p
}

// after is the first reply that arrived after t.
func (p *pinger) after(t time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.replies {
		if r.After(t) {
			return r, true
		}
	}
	return time.Time{}, false
}

func (p *pinger) repliedSince(t time.Time) bool {
	_, ok := p.after(t)
	return ok
}

// firstAfter waits up to timeout for the first reply after t.
func (p *pinger) firstAfter(t time.Time, timeout time.Duration) (time.Time, error) {
	deadline := time.After(timeout)
	for {
		if r, ok := p.after(t); ok {
			return r, nil
		}
		select {
		case <-p.news:
		case <-deadline:
			return time.Time{}, fmt.Errorf("no ping reply from web through home within %v", timeout)
		}
	}
}

// initiations is a tcpdump on net's link to beg of the WireGuard handshake initiations to home:
// message type 1, 148 bytes of UDP payload (UDP length 156).
type initiations struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	lines  []string // protected by mu
}

func captureInitiations(tb testing.TB, home string) *initiations {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	filter := fmt.Sprintf("udp and dst host %s and dst port 13231 and udp[4:2] = 156 and udp[8] = 1", home)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", nsName("net"), "tcpdump", "-i", "beg0", "-n", "-l", "-tt", filter)
	stdout := startTcpdump(tb, cmd, cancel, "in net on beg0")
	c := &initiations{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.mu.Unlock()
		}
		_ = cmd.Wait()
	}()
	tb.Cleanup(func() {
		cancel()
		<-c.done
	})
	return c
}

// stop ends the capture and returns when each initiation was seen.
func (c *initiations) stop(tb testing.TB) []time.Time {
	tb.Helper()
	c.cancel()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	var at []time.Time
	for _, l := range c.lines {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		at = append(at, epoch(tb, f[0]))
	}
	return at
}

func roundAll(ds []time.Duration) []time.Duration {
	r := make([]time.Duration, len(ds))
	for i, d := range ds {
		r[i] = d.Round(time.Millisecond)
	}
	return r
}
