package gateway

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type lanWorld struct {
	l      *lanPath
	pr     *fakeProber
	tunnel bool
	logs   bytes.Buffer
	now    time.Time
}

func newLANWorld(masq bool) *lanWorld {
	w := &lanWorld{pr: &fakeProber{}, now: t0}
	w.l = &lanPath{probe: w.pr, tunnelOK: func(time.Time) bool { return w.tunnel }, lan: "192.168.86.0/24", masq: masq,
		interval: ProbeInterval, timeout: ProbeTimeout, log: slog.New(slog.NewTextHandler(&w.logs, nil)), kick: make(chan struct{}, 1)}
	w.l.st.Source = "192.168.86.1"
	return w
}

// step is one probe after an answered tunnel probe.
func (w *lanWorld) step() {
	w.l.step(context.Background(), w.now)
	w.now = w.now.Add(ProbeInterval)
}

// TestLANPathBroken: the tunnel probe is answered, the LAN's is not: status
// says so at the first miss and names the fix, the log warns once, and a
// line says when it works again.
func TestLANPathBroken(t *testing.T) {
	w := newLANWorld(false)
	w.l.idle(w.now) // the tunnel does not answer yet: nothing sent
	if st := w.l.state(); st.Probes != 0 || st.OK || !strings.Contains(st.Reason, "the tunnel does not answer") || w.pr.calls != 0 {
		t.Fatalf("before the tunnel answers: %+v, %d probes sent", st, w.pr.calls)
	}
	w.tunnel = true
	w.pr.err = errors.New("no answer") // home drops 192.168.86.1
	w.step()
	st := w.l.state()
	if st.OK || st.Probes != 1 || !strings.Contains(st.Reason, "must allow 192.168.86.0/24") || !strings.Contains(st.Reason, "Masquerade = on") {
		t.Errorf("after one miss: %+v", st)
	}
	for range 10 {
		w.step()
	}
	if n := strings.Count(w.logs.String(), "level=WARN"); n != 1 || !strings.Contains(w.logs.String(), "Masquerade = on") {
		t.Errorf("%d warnings, want 1 naming the fix:\n%s", n, &w.logs)
	}
	w.pr.err = nil // the home peer now allows the LAN
	w.step()
	if st := w.l.state(); !st.OK || st.Reason != "" || st.LastOK != w.now.Add(-ProbeInterval) {
		t.Errorf("after an answer: %+v", st)
	}
	if !strings.Contains(w.logs.String(), "the LAN path answers again") {
		t.Errorf("no recovery line:\n%s", &w.logs)
	}
}

// TestLANPathRun: run probes once per poke, not on its own, and pokes
// never block the healer.
func TestLANPathRun(t *testing.T) {
	w := newLANWorld(false)
	w.tunnel = true
	probed := make(chan struct{}, 10)
	w.l.probe = probeFunc(func(ctx context.Context) error { probed <- struct{}{}; return nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.l.run(ctx, time.Now); close(done) }()
	for range 3 {
		w.l.poke()
		select {
		case <-probed:
		case <-time.After(5 * time.Second):
			t.Fatal("no probe after a poke")
		}
	}
	cancel()
	<-done
	for range 5 {
		w.l.poke() // nobody reads: must not block
	}
	if st := w.l.state(); st.Probes != 3 || !st.OK {
		t.Errorf("state %+v, want 3 answered probes", st)
	}
}

// TestLANPathOneLoss: one lost probe sets status but is no warning.
func TestLANPathOneLoss(t *testing.T) {
	w := newLANWorld(false)
	w.tunnel = true
	w.pr.err = errors.New("no answer")
	w.step()
	w.pr.err = nil
	w.step()
	if w.logs.Len() != 0 {
		t.Errorf("one lost probe logged:\n%s", &w.logs)
	}
}

// TestLANPathMasqueradeOn: with Masquerade on, a broken LAN path points at
// the NAT table, not at Masquerade.
func TestLANPathMasqueradeOn(t *testing.T) {
	w := newLANWorld(true)
	w.tunnel = true
	w.pr.err = errors.New("no answer")
	w.step()
	if r := w.l.state().Reason; !strings.Contains(r, "though Masquerade is on") || strings.Contains(r, "set Masquerade = on") {
		t.Errorf("reason %q", r)
	}
}

// TestHealerPokesLANPath: the healer calls its hook after answered probes
// only, so the LAN-path probe always follows a fresh tunnel answer.
func TestHealerPokesLANPath(t *testing.T) {
	w := newHealerWorld(t, "home.example.net:13231", addrA)
	pokes := 0
	w.h.onAnswer = func() { pokes++ }
	w.step() // boot: no probe
	w.step()
	w.step()
	w.pr.err = errors.New("timeout")
	w.step()
	w.step()
	if pokes != 2 {
		t.Errorf("%d pokes for 2 answered and 2 missed probes, want 2", pokes)
	}
}
