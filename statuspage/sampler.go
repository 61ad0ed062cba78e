package statuspage

import (
	"context"
	"sync"
	"time"
)

// Window is how far back the throughput chart looks.
const Window = 15 * time.Minute

// DefaultInterval is how often Listen samples the counters.
const DefaultInterval = 5 * time.Second

// sample is one reading of the tunnel's counters.
type sample struct {
	t      int64 // Unix nanoseconds
	rx, tx uint64
	home   bool
}

// Sampler keeps the tunnel's byte counters of the last Window in a ring of
// fixed size, and when the gateway was last seen coming home or leaving. It
// is safe for concurrent use; Sample allocates nothing.
type Sampler struct {
	interval time.Duration

	mu    sync.Mutex
	ring  []sample  // protected by mu; fixed length
	next  int       // protected by mu; where the next sample goes
	n     int       // protected by mu; samples held, up to len(ring)
	home  bool      // protected by mu; at home at the last sample
	since time.Time // protected by mu; when home last changed (the first sample counts as a change)
}

// NewSampler returns a sampler for readings every interval (DefaultInterval
// when 0 or less), holding Window's worth of them.
func NewSampler(interval time.Duration) *Sampler {
	if interval <= 0 {
		interval = DefaultInterval
	}
	return &Sampler{interval: interval, ring: make([]sample, int(Window/interval)+2)}
}

// Interval is the sampling interval the sampler was made for.
func (s *Sampler) Interval() time.Duration { return s.interval }

// Sample records the counters rx and tx (bytes received and sent, as the
// device counts them) read at now, and whether the gateway is at home.
func (s *Sampler) Sample(now time.Time, rx, tx uint64, home bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 || home != s.home {
		s.home, s.since = home, now
	}
	s.ring[s.next] = sample{t: now.UnixNano(), rx: rx, tx: tx, home: home}
	s.next = (s.next + 1) % len(s.ring)
	if s.n < len(s.ring) {
		s.n++
	}
}

// Run samples read every interval until ctx is done, the first time at once.
func (s *Sampler) Run(ctx context.Context, read func() (now time.Time, rx, tx uint64, home bool)) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		s.Sample(read())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// State reports whether the gateway was at home at the last sample and
// since when it has been so; ok is false before the first sample.
func (s *Sampler) State() (home bool, since time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.home, s.since, s.n > 0
}

// Rate is the throughput between two samples.
type Rate struct {
	T       time.Time // the later sample's time
	In, Out float64   // bits per second received and sent through the tunnel
	Home    bool      // at home at the later sample
	// Break is set on the first rate after a gap: samples missing (more
	// than three intervals apart) or counters that went back (the device
	// was replaced). The chart does not join a line across it.
	Break bool
}

// Rates appends to dst the rates between consecutive samples within the
// Window ending at now, oldest first, and returns it.
func (s *Sampler) Rates(dst []Rate, now time.Time) []Rate {
	s.mu.Lock()
	defer s.mu.Unlock()
	from := now.Add(-Window).UnixNano()
	gap := int64(3 * s.interval)
	first := (s.next - s.n + len(s.ring)) % len(s.ring)
	brk := true
	for i := 1; i < s.n; i++ {
		prev := s.ring[(first+i-1)%len(s.ring)]
		cur := s.ring[(first+i)%len(s.ring)]
		dt := cur.t - prev.t
		if prev.t < from {
			continue
		}
		if dt <= 0 || dt > gap || cur.rx < prev.rx || cur.tx < prev.tx {
			brk = true
			continue
		}
		sec := float64(dt) / 1e9
		dst = append(dst, Rate{
			T:     time.Unix(0, cur.t),
			In:    float64(cur.rx-prev.rx) * 8 / sec,
			Out:   float64(cur.tx-prev.tx) * 8 / sec,
			Home:  cur.home,
			Break: brk,
		})
		brk = false
	}
	return dst
}
