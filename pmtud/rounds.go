package pmtud

import (
	"context"
	"errors"
	"time"
)

const liveSize = 128 // the liveness probe: small enough for any path

// errAborted ends a round when ctx ends.
var errAborted = errors.New("aborted")

// pass probes size up to tries times and reports whether one got through.
func (s *Searcher) pass(ctx context.Context, size, tries int) (bool, error) {
	for range tries {
		err := s.p.Probe(ctx, size, s.timeout)
		s.mu.Lock()
		s.st.Probes++
		s.st.LastProbe = time.Now()
		switch {
		case err == nil:
			s.st.Error = ""
		case ctx.Err() != nil:
			s.st.Probes-- // never sent, or its answer never awaited
		default:
			s.st.Lost++
			if !errors.Is(err, ErrLost) {
				s.st.Error = err.Error()
			}
		}
		s.mu.Unlock()
		if ctx.Err() != nil {
			return false, errAborted
		}
		if err == nil {
			return true, nil
		}
	}
	return false, nil
}

// alive probes a small size with the longest timeout (the first packet may
// wait for a handshake), and once one gets through, times a second one to
// set the round's timeout: 4 round trips, at least MinTimeout.
func (s *Searcher) alive(ctx context.Context) (bool, error) {
	small := min(liveSize, s.cfg.Floor)
	for range s.cfg.ConfirmTries {
		s.timeout = s.cfg.Timeout
		ok, err := s.pass(ctx, small, 1)
		if err != nil || !ok {
			if err != nil {
				return false, err
			}
			continue
		}
		start := time.Now()
		if ok, err := s.pass(ctx, small, 1); err != nil {
			return false, err
		} else if ok {
			s.timeout = min(max(4*time.Since(start), s.cfg.MinTimeout), s.cfg.Timeout)
		}
		return true, nil
	}
	return false, nil
}

// full is a full round: liveness, confirm the current MTU (shrinking if it
// fails), then try to grow.
func (s *Searcher) full(ctx context.Context) {
	ok, err := s.alive(ctx)
	if err != nil {
		return
	}
	if !ok {
		s.setState(StateDown)
		return
	}
	e := s.effective()
	ok, err = s.pass(ctx, e, s.cfg.ConfirmTries)
	if err != nil {
		return
	}
	if !ok {
		s.shrink(ctx, e)
		return
	}
	s.setPath(e)
	s.setState(StateOK)
	if time.Since(s.Status().LastChange) > s.cfg.Interval {
		s.raiseWait = s.cfg.RaiseInterval // stable for a while: no longer flapping
	}
	if e < s.cfg.Ceiling {
		s.raise(ctx)
	}
}

// confirm probes the current MTU; when it fails, it tells a tunnel that is
// down from a path that shrank, and shrinks for the latter.
func (s *Searcher) confirm(ctx context.Context) {
	e := s.effective()
	ok, err := s.pass(ctx, e, s.cfg.ConfirmTries)
	if err != nil || ok {
		return
	}
	ok, err = s.alive(ctx)
	if err != nil {
		return
	}
	if !ok {
		s.setState(StateDown)
		return
	}
	s.shrink(ctx, e)
}

// shrink finds the largest size below e that gets through and makes it the
// MTU. Called once e failed while a small probe got through.
func (s *Searcher) shrink(ctx context.Context, e int) {
	floor := s.cfg.Floor
	ok, err := s.pass(ctx, floor, s.cfg.Tries)
	if err != nil {
		return
	}
	best, state := floor, StateBelowFloor
	if ok {
		if best, err = s.largest(ctx, floor, e-1); err != nil {
			return
		}
		state = StateOK
	}
	// Everything lost since the liveness probe looks like a path that
	// carries only the floor; it may be a tunnel that just went down.
	if best == floor {
		if ok, err := s.alive(ctx); err != nil {
			return
		} else if !ok {
			s.setState(StateDown)
			return
		}
	}
	if state == StateOK {
		s.setPath(best)
	} else {
		s.setPath(0)
	}
	s.setState(state)
	if s.lastGrow.After(time.Now().Add(-s.cfg.Interval)) {
		s.raiseWait = min(2*s.raiseWait, s.cfg.Interval)
	}
	s.setEffective(best)
}

// raise looks for a larger size that gets through and grows the MTU to it
// once it got through GrowSuccesses times in a row.
func (s *Searcher) raise(ctx context.Context) {
	e := s.effective()
	if e >= s.cfg.Ceiling {
		return
	}
	best, err := s.largest(ctx, e, s.cfg.Ceiling)
	if err != nil || best <= e {
		return
	}
	s.setPath(best)
	for range s.cfg.GrowSuccesses {
		if ok, err := s.pass(ctx, best, 1); err != nil || !ok {
			return
		}
	}
	s.lastGrow = time.Now()
	s.setEffective(best)
}

// largest is the largest size in [lo, hi] that gets through, lo assumed to
// (a binary search, Tries probes a size).
func (s *Searcher) largest(ctx context.Context, lo, hi int) (int, error) {
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		ok, err := s.pass(ctx, mid, s.cfg.Tries)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo, nil
}
