package health

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fobgw/fobgw/clock"
)

// fakeClock is a clock.Source: a time and the kernel's maximum error.
type fakeClock struct {
	now      time.Time
	maxError time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) Kernel() (clock.Kernel, error) {
	return clock.Kernel{MaxError: c.maxError, Unsync: c.maxError >= clock.UnsyncedMaxError}, nil
}

// clockWorld is a healer world with a fake clock, the build at t0 and the
// log in a buffer.
func clockWorld(tb testing.TB, clk *fakeClock) (*healerWorld, *bytes.Buffer) {
	tb.Helper()
	var logs bytes.Buffer
	c := Config{Log: slog.New(slog.NewTextHandler(&logs, nil)), Clock: clk, BuildTime: t0}
	return newHealerWorldWith(tb, c, "home.example.net:13231", addrA, addrB), &logs
}

// TestHealerClockBeforeBuild: a board that booted with a time before the
// build (no RTC, no NTP yet): the probes miss, but the endpoint is not
// blamed; status and one warning say why. Once NTP sets the clock, the
// misses count again and the endpoint heals.
func TestHealerClockBeforeBuild(t *testing.T) {
	clk := &fakeClock{now: time.Date(1970, 1, 1, 0, 1, 0, 0, time.UTC), maxError: clock.UnsyncedMaxError}
	w, logs := clockWorld(t, clk)
	w.step()
	w.pr.err = errors.New("timeout") // handshakes rejected: the timestamp is old
	for range 20 {
		w.step()
	}
	st := w.h.state()
	if len(w.peer.set) != 1 || w.res.calls != 1 {
		t.Errorf("the endpoint was blamed for the clock: endpoints %v, resolutions %d", w.peer.set, w.res.calls)
	}
	if st.Clock == nil || st.Clock.OK() || !st.Clock.BeforeBuild || !strings.Contains(st.Clock.Reason, "before this build") {
		t.Errorf("status clock %+v; want not OK, before the build, and saying so", st.Clock)
	}
	if st.ProbeMisses != 0 || st.ProbeMissesTotal != 20 {
		t.Errorf("misses %d (total %d); want none counted against the endpoint, 20 in all", st.ProbeMisses, st.ProbeMissesTotal)
	}
	if n := strings.Count(logs.String(), `msg="clock not synchronised: handshakes may be rejected until NTP has synced"`); n != 1 {
		t.Errorf("%d clock warnings, want 1:\n%s", n, logs)
	}

	// NTP syncs; the tunnel still does not answer: now it is the endpoint.
	clk.now, clk.maxError = t0.Add(time.Hour), 50*time.Millisecond
	w.stepUntil(t, "the endpoint to move once the clock is right", time.Minute, func() bool { return w.peer.last() == ap(addrB) })
	if !strings.Contains(logs.String(), "clock synchronised again") {
		t.Errorf("no line when the clock recovered:\n%s", logs)
	}
	if st := w.h.state(); st.Clock == nil || !st.Clock.OK() {
		t.Errorf("status clock %+v after NTP", st.Clock)
	}
}

// TestHealerClockUnsynchronised: no NTP but a plausible time (after the
// build): the clock is reported and warned about, and healing goes on as
// usual, so failover works on boards without NTP.
func TestHealerClockUnsynchronised(t *testing.T) {
	clk := &fakeClock{now: t0.Add(24 * time.Hour), maxError: clock.UnsyncedMaxError}
	w, logs := clockWorld(t, clk)
	w.step()
	w.pr.err = errors.New("timeout")
	w.stepUntil(t, "the endpoint to move", time.Minute, func() bool { return w.peer.last() == ap(addrB) })
	st := w.h.state()
	if st.Clock == nil || st.Clock.Synced || st.Clock.BeforeBuild {
		t.Errorf("status clock %+v; want unsynchronised, not before the build", st.Clock)
	}
	if n := strings.Count(logs.String(), `msg="clock not synchronised`); n != 1 {
		t.Errorf("%d clock warnings, want 1:\n%s", n, logs)
	}
}

// TestHealerNoClock: without a clock source (tests, hand-made healers)
// status has no clock and nothing is excused.
func TestHealerNoClock(t *testing.T) {
	w := newHealerWorld(t, "home.example.net:13231", addrA)
	w.step()
	if st := w.h.state(); st.Clock != nil {
		t.Errorf("clock %+v without a source", st.Clock)
	}
}
