package pmtud

import (
	"context"
	"sync"
	"time"
)

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
