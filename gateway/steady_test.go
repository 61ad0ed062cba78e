package gateway

import (
	"strings"
	"testing"
	"time"
)

// TestSteadyHandshake: the device's handshake time, from the wall clock,
// becomes a moment on the monotonic clock when first read: its age then is
// its wall-clock age, bounded by the monotonic time since the previous read
// (it is new since then) or since the device's creation, and it stays that
// moment. So a handshake whose wall time is already hours in the past when
// first read (NTP stepped the clock forward in between, on a board without a
// real-time clock) is no older than the time since the previous read.
func TestSteadyHandshake(t *testing.T) {
	now := time.Now()
	s := steadyHandshake{start: now.Add(-10 * time.Second)}
	if got := s.of(time.Time{}, now.Add(-5*time.Second)); !got.IsZero() {
		t.Errorf("no handshake: %v, want zero", got)
	}
	hs := now.Round(0).Add(-2 * time.Second)
	got := s.of(hs, now)
	if d := now.Sub(got); d != 2*time.Second {
		t.Errorf("a handshake 2 s before its first read: %v old, want 2s", d)
	}
	if !strings.Contains(got.String(), " m=") {
		t.Errorf("%v has no monotonic reading: a clock step would age it", got)
	}
	later := now.Add(40 * time.Second)
	if g := s.of(hs, later); !g.Equal(got) || later.Sub(g) != 42*time.Second {
		t.Errorf("read again 40 s later: %v (%v old), want %v (42s old)", g, later.Sub(g), got)
	}
	next := later.Add(3 * time.Second)
	stepped := next.Round(0).Add(-5 * time.Hour)
	if g := s.of(stepped, next); next.Sub(g) != 3*time.Second {
		t.Errorf("a new handshake 5 h old by the wall clock, 3 s after the previous read: %v old, want 3s (the clock stepped)", next.Sub(g))
	}
	last := next.Add(time.Second)
	ahead := last.Round(0).Add(time.Minute)
	if g := s.of(ahead, last); last.Sub(g) != 0 {
		t.Errorf("a new handshake a minute ahead of the wall clock: %v old, want 0", last.Sub(g))
	}
	// The first read of a device bounds by its creation.
	fresh := steadyHandshake{start: now.Add(-4 * time.Second)}
	if g := fresh.of(now.Round(0).Add(-time.Hour), now); now.Sub(g) != 4*time.Second {
		t.Errorf("a device made 4 s ago, first read, a handshake an hour old by the wall clock: %v old, want 4s", now.Sub(g))
	}
}
