package gateway

import (
	"strings"
	"testing"
	"time"
)

// TestSteadyHandshake: the device's handshake time, from the wall clock,
// becomes a moment on the monotonic clock when first read: its age then is
// its wall-clock age, and it stays that moment; a handshake whose wall time
// is already far in the past when first read (NTP stepped the clock forward
// in between, on a board without a real-time clock) counts as just now, not
// hours old.
func TestSteadyHandshake(t *testing.T) {
	var s steadyHandshake
	now := time.Now()
	if got := s.of(time.Time{}, now); !got.IsZero() {
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
	stepped := later.Round(0).Add(-5 * time.Hour)
	if g := s.of(stepped, later); later.Sub(g) != 0 {
		t.Errorf("a new handshake 5 h old by the wall clock when first read: %v old, want 0 (the clock stepped)", later.Sub(g))
	}
	ahead := later.Round(0).Add(time.Minute)
	if g := s.of(ahead, later); later.Sub(g) != 0 {
		t.Errorf("a new handshake a minute ahead of the wall clock: %v old, want 0", later.Sub(g))
	}
}
