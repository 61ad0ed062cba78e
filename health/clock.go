package health

import "github.com/fobgw/fobgw/clock"

// The clock, checked at each step of the healer. Policy: while the time is
// before the binary's build time (certainly wrong: the peer rejects the
// handshakes' timestamps) misses are not counted against the endpoint;
// while the clock is merely unsynchronised (no NTP, as on many boards) the
// healer only warns and keeps healing, since a roughly right clock does
// not break handshakes and failover must work without NTP.

// checkClock reads the clock, shows it in status and logs when it turns
// unfit and when it recovers. Without a clock source it is always fit.
func (h *Healer) checkClock() clock.State {
	if h.clk == nil {
		return clock.State{Synced: true}
	}
	s := clock.Check(h.clk, h.build)
	h.update(func(st *healerState) { c := s; st.Clock = &c })
	switch {
	case !s.OK() && !h.clockWarned:
		h.clockWarned = true
		h.log.Warn("clock not synchronised: handshakes may be rejected until NTP has synced",
			"reason", s.Reason, "before_build", s.BeforeBuild, "max_error_s", s.MaxError)
	case s.OK() && h.clockWarned:
		h.clockWarned = false
		h.log.Info("clock synchronised again", "now", s.Now)
	}
	return s
}

// excuseMisses takes back the consecutive misses while the clock is before
// the build: they are the clock's fault, not the endpoint's.
func (h *Healer) excuseMisses() {
	h.update(func(s *healerState) {
		if s.ProbeMisses > 0 {
			s.ProbeMisses = 0
			s.LastError += " (the clock is before this build: not counted against the endpoint)"
		}
	})
}
