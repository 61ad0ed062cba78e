package pmtud

import "time"

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
