package pmtud

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Config is a Searcher's setting. Zero durations and counts take the
// defaults named beside them.
type Config struct {
	// Ceiling is the largest MTU the search considers (see Ceiling); the
	// tunnel starts at it. Required.
	Ceiling int
	// Floor is the smallest MTU the search settles on; 0 is DefaultFloor.
	// Above Ceiling it is lowered to Ceiling (no search then).
	Floor int

	// Interval is the time between full rounds: liveness, confirming the
	// current MTU, growing towards the ceiling. Default 10 min.
	Interval time.Duration
	// ConfirmInterval is how often the current MTU is confirmed with a
	// probe of its size while Active reports traffic. Default 10 s.
	ConfirmInterval time.Duration
	// RaiseInterval is how soon after a round below the ceiling a larger MTU
	// is tried; it doubles after every shrink that follows a grow within
	// Interval (a flapping path), up to Interval. Default 1 min.
	RaiseInterval time.Duration
	// DownRetry is the longest time between rounds while the tunnel is down
	// (even small probes lost): the first retry comes after 1 s (or
	// DownRetry if shorter), each next one twice as late. Default 10 s.
	DownRetry time.Duration
	// Timeout is the longest a probe is waited for; within a round it is
	// 4 round trips of the liveness probe, at least MinTimeout. Defaults
	// 2 s and 200 ms.
	Timeout, MinTimeout time.Duration

	// Tries is how many probes a size gets in the search before it counts
	// as too big (loss is not size). Default 2.
	Tries int
	// ConfirmTries is how many probes the current MTU gets before it
	// counts as too big and the search shrinks it. Default 3.
	ConfirmTries int
	// GrowSuccesses is how many probes of a larger size must get through in
	// a row before the MTU grows to it. Default 3.
	GrowSuccesses int

	// Active reports, and resets, whether the tunnel carried packets larger
	// than the floor since the last call (Device.Active); nil means always.
	Active func() bool
	// OnChange, if set, is called from Run's goroutine when the effective
	// MTU changes, with the old and new values, before the Searcher goes
	// on. It should set the TUN's MTU and log the change once.
	OnChange func(old, new int)
}

const liveSize = 128 // the liveness probe: small enough for any path

func (c *Config) setDefaults() {
	dur := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	num := func(n *int, def int) {
		if *n <= 0 {
			*n = def
		}
	}
	num(&c.Floor, DefaultFloor)
	c.Floor = min(c.Floor, c.Ceiling)
	dur(&c.Interval, 10*time.Minute)
	dur(&c.ConfirmInterval, 10*time.Second)
	dur(&c.RaiseInterval, time.Minute)
	dur(&c.DownRetry, 10*time.Second)
	dur(&c.Timeout, 2*time.Second)
	dur(&c.MinTimeout, 200*time.Millisecond)
	num(&c.Tries, 2)
	num(&c.ConfirmTries, 3)
	num(&c.GrowSuccesses, 3)
}

// State is what a Searcher last found.
type State string

const (
	// StateStarting: no round has ended yet; the MTU is the ceiling.
	StateStarting State = "starting"
	// StateOK: probes of the effective MTU get through.
	StateOK State = "ok"
	// StateDown: even small probes are lost (no handshake, home
	// unreachable); the MTU stays where it was.
	StateDown State = "down"
	// StateBelowFloor: small probes get through, probes of the floor do
	// not; the MTU is the floor, and larger packets are lost on the path.
	StateBelowFloor State = "below-floor"
)

// Status is a snapshot of a Searcher, for status and metrics.
type Status struct {
	Ceiling int `json:"ceiling"`
	// Path is the largest size the last search saw get through both ways,
	// up to the ceiling (nothing larger is probed); 0 until measured.
	Path int `json:"path"`
	// Effective is the tunnel's MTU: min(Ceiling, Path), once a grow is
	// confirmed.
	Effective  int       `json:"effective"`
	State      State     `json:"state"`
	LastProbe  time.Time `json:"last_probe"`
	LastChange time.Time `json:"last_change"`
	Probes     uint64    `json:"probes"`
	Lost       uint64    `json:"lost"`
	Changes    uint64    `json:"changes"`
	// Error is the last error sending a probe ("" if none since).
	Error string `json:"error,omitempty"`
}

// Searcher finds the largest inner packet size that gets through the tunnel
// both ways, between the floor and the ceiling, and keeps the effective MTU
// at it: lower at once when probes of the current size fail while small ones
// get through, higher only after probes of the larger size got through
// GrowSuccesses times in a row.
type Searcher struct {
	cfg     Config
	p       Prober
	trigger chan struct{}

	// owned by Run's goroutine
	timeout   time.Duration
	raiseWait time.Duration
	downWait  time.Duration
	lastGrow  time.Time

	mu sync.Mutex
	st Status // protected by mu
}

// NewSearcher returns a Searcher probing with p. The effective MTU starts at
// cfg.Ceiling.
func NewSearcher(cfg Config, p Prober) *Searcher {
	cfg.setDefaults()
	return &Searcher{
		cfg:       cfg,
		p:         p,
		trigger:   make(chan struct{}, 1),
		timeout:   cfg.Timeout,
		raiseWait: cfg.RaiseInterval,
		downWait:  min(time.Second, cfg.DownRetry),
		st:        Status{Ceiling: cfg.Ceiling, Effective: cfg.Ceiling, State: StateStarting},
	}
}

// Status returns a snapshot. Safe for concurrent use.
func (s *Searcher) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// Trigger asks Run for a full round as soon as the current one ends: after a
// failed handshake, or when the underlay changed. It never blocks.
func (s *Searcher) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Run searches at once, then keeps the MTU fitted until ctx ends.
func (s *Searcher) Run(ctx context.Context) {
	if s.cfg.Floor >= s.cfg.Ceiling {
		return // nothing to search
	}
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var nextFull, nextRaise, nextConfirm time.Time
	full := func() {
		s.full(ctx)
		now := time.Now()
		nextFull = now.Add(s.cfg.Interval)
		if s.state() == StateDown {
			nextFull = now.Add(s.downWait)
			s.downWait = min(2*s.downWait, s.cfg.DownRetry)
		} else {
			s.downWait = min(time.Second, s.cfg.DownRetry)
		}
		nextRaise = now.Add(s.raiseWait)
		nextConfirm = now.Add(s.cfg.ConfirmInterval)
	}
	full()
	for ctx.Err() == nil {
		due := nextFull
		below := s.effective() < s.cfg.Ceiling
		if below && nextRaise.Before(due) {
			due = nextRaise
		}
		if nextConfirm.Before(due) {
			due = nextConfirm
		}
		t.Reset(time.Until(due))
		select {
		case <-ctx.Done():
			return
		case <-s.trigger:
			t.Stop()
			full()
			continue
		case <-t.C:
		}
		now := time.Now()
		switch {
		case !now.Before(nextFull):
			full()
		case below && !now.Before(nextRaise):
			s.raise(ctx)
			nextRaise = time.Now().Add(s.raiseWait)
		default:
			if s.active() {
				s.confirm(ctx)
			}
			nextConfirm = time.Now().Add(s.cfg.ConfirmInterval)
		}
	}
}

func (s *Searcher) active() bool { return s.cfg.Active == nil || s.cfg.Active() }

func (s *Searcher) state() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.State
}

func (s *Searcher) effective() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Effective
}

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

func (s *Searcher) setState(st State) {
	s.mu.Lock()
	s.st.State = st
	s.mu.Unlock()
}

func (s *Searcher) setPath(p int) {
	s.mu.Lock()
	s.st.Path = p
	s.mu.Unlock()
}

func (s *Searcher) setEffective(e int) {
	s.mu.Lock()
	old := s.st.Effective
	if old == e {
		s.mu.Unlock()
		return
	}
	s.st.Effective = e
	s.st.Changes++
	s.st.LastChange = time.Now()
	s.mu.Unlock()
	if s.cfg.OnChange != nil {
		s.cfg.OnChange(old, e)
	}
}
