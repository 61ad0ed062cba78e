package pmtud

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestCeiling(t *testing.T) {
	for _, tc := range []struct{ configured, want int }{
		{0, 1420},    // MTU = auto
		{1420, 1420}, // the story's MTU = 1420
		{1380, 1380},
		{9000, 9000}, // a jumbo underlay: probed up to 9000
		{-1, 1420},
	} {
		if got := Ceiling(tc.configured); got != tc.want {
			t.Errorf("Ceiling(%d) = %d, want %d", tc.configured, got, tc.want)
		}
	}
}

func TestEffective(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		ceiling, floor, path int
		want                 int
	}{
		{"nothing measured: the ceiling", 1420, 1280, 0, 1420},
		{"path below the ceiling", 1420, 1280, 1340, 1340},
		{"path above the ceiling", 1420, 1280, 1500, 1420},
		{"path below the floor", 1420, 1280, 1200, 1280},
		{"ceiling below the floor", 1200, 1280, 1100, 1200},
		{"ceiling below the floor, path above", 1200, 1280, 1300, 1200},
	} {
		if got := Effective(tc.ceiling, tc.floor, tc.path); got != tc.want {
			t.Errorf("%s: Effective(%d, %d, %d) = %d, want %d", tc.name, tc.ceiling, tc.floor, tc.path, got, tc.want)
		}
	}
}

// fakePath is a Prober over a simulated tunnel: a probe gets through when
// its size fits the path both ways (up: the request, down: the reply), the
// tunnel is alive, and neither direction loses it at random.
type fakePath struct {
	mu     sync.Mutex
	up     int // largest request that gets through, protected by mu
	down   int // largest reply that gets through, protected by mu
	dead   bool
	loss   float64 // per direction, protected by mu
	rnd    *rand.Rand
	before func(f *fakePath, n int)  // called (mu held) before probe n (from 0)
	delay  func(n int) time.Duration // how long probe n takes to be answered
	log    []probe                   // protected by mu
}

type probe struct {
	size int
	ok   bool
}

func newFakePath(path int) *fakePath {
	return &fakePath{up: path, down: path, rnd: rand.New(rand.NewPCG(1, 2))}
}

func (f *fakePath) Probe(ctx context.Context, size int, timeout time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.before != nil {
		f.before(f, len(f.log))
	}
	if f.delay != nil {
		time.Sleep(f.delay(len(f.log))) // fake time: tests that set delay run in a synctest bubble
	}
	ok := !f.dead && size <= f.up && size <= f.down &&
		f.rnd.Float64() >= f.loss && f.rnd.Float64() >= f.loss
	f.log = append(f.log, probe{size, ok})
	if !ok {
		return ErrLost
	}
	return nil
}

func (f *fakePath) set(up, down int) {
	f.mu.Lock()
	f.up, f.down = up, down
	f.mu.Unlock()
}

func (f *fakePath) probes() []probe {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]probe(nil), f.log...)
}

// changes records OnChange calls.
type changes struct {
	mu  sync.Mutex
	got [][2]int // protected by mu
}

func (c *changes) record(old, new int) {
	c.mu.Lock()
	c.got = append(c.got, [2]int{old, new})
	c.mu.Unlock()
}

func (c *changes) list() [][2]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][2]int(nil), c.got...)
}

func newTestSearcher(p Prober, ch *changes) *Searcher {
	return NewSearcher(Config{Ceiling: 1420, OnChange: ch.record}, p)
}

func TestFullRoundFindsThePath(t *testing.T) {
	for _, tc := range []struct {
		name     string
		up, down int
		want     int
		state    State
	}{
		{"path carries the ceiling", 1420, 1420, 1420, StateOK},
		{"path above the ceiling", 1500, 1500, 1420, StateOK},
		{"the story's link at 1400 (outer), 1340 inside", 1340, 1340, 1340, StateOK},
		{"asymmetric: the reply does not fit", 1420, 1380, 1380, StateOK},
		{"asymmetric: the request does not fit", 1350, 1420, 1350, StateOK},
		{"one byte above the floor", 1281, 1281, 1281, StateOK},
		{"exactly the floor", 1280, 1280, 1280, StateOK},
		{"below the floor", 1200, 1200, 1280, StateBelowFloor},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakePath(0)
			f.set(tc.up, tc.down)
			var ch changes
			s := newTestSearcher(f, &ch)
			s.full(context.Background())
			st := s.Status()
			if st.Effective != tc.want || st.State != tc.state {
				t.Fatalf("effective %d, state %s; want %d, %s (probes %v)", st.Effective, st.State, tc.want, tc.state, f.probes())
			}
			want := [][2]int{{1420, tc.want}}
			if tc.want == 1420 {
				want = nil
			}
			if got := ch.list(); len(got) != len(want) || (len(want) == 1 && got[0] != want[0]) {
				t.Errorf("OnChange calls %v, want %v", got, want)
			}
			for _, p := range f.probes() {
				if p.size > 1420 {
					t.Errorf("probed %d, above the ceiling", p.size)
				}
			}
		})
	}
}

func TestTunnelDownKeepsTheMTU(t *testing.T) {
	f := newFakePath(1400)
	var ch changes
	s := newTestSearcher(f, &ch)
	s.full(context.Background())
	if e := s.Status().Effective; e != 1400 {
		t.Fatalf("effective %d, want 1400", e)
	}
	f.mu.Lock()
	f.dead = true
	f.mu.Unlock()
	s.full(context.Background())
	s.confirm(context.Background())
	s.raise(context.Background())
	st := s.Status()
	if st.Effective != 1400 || st.State != StateDown {
		t.Errorf("tunnel down: effective %d, state %s; want 1400 and %s", st.Effective, st.State, StateDown)
	}
	if got := ch.list(); len(got) != 1 {
		t.Errorf("OnChange calls %v, want only the first shrink", got)
	}
}

// The tunnel dies in the middle of a shrink: the probes after it are lost
// like too-big ones, but the MTU must not collapse to the floor.
func TestTunnelDiesDuringShrink(t *testing.T) {
	f := newFakePath(1420)
	var ch changes
	s := newTestSearcher(f, &ch)
	s.full(context.Background())
	f.mu.Lock()
	f.up, f.down = 1360, 1360
	// Dies right after the liveness probe that follows the failed
	// confirmations: the shrink's probes are all lost.
	f.before = func(f *fakePath, n int) {
		if n >= 2 && f.log[n-1].size == liveSize && f.log[n-1].ok && f.log[n-2].size == 1420 && !f.log[n-2].ok {
			f.dead = true
		}
	}
	f.mu.Unlock()
	s.confirm(context.Background())
	st := s.Status()
	if st.Effective != 1420 || st.State != StateDown {
		t.Errorf("effective %d, state %s; want 1420 kept and %s (probes %v)", st.Effective, st.State, StateDown, f.probes())
	}
}

func TestLossDoesNotOvershoot(t *testing.T) {
	f := newFakePath(1400)
	f.loss = 0.2
	var ch changes
	s := newTestSearcher(f, &ch)
	s.full(context.Background())
	for range 40 {
		s.raise(context.Background())
	}
	if e := s.Status().Effective; e != 1400 {
		t.Errorf("after 40 raise attempts with 20%% loss each way: effective %d, want 1400", e)
	}
	for _, c := range ch.list() {
		if c[1] > 1400 || c[1] < 1280 {
			t.Errorf("changed to %d, outside 1280-1400", c[1])
		}
	}
}

// checkGrows verifies that every increase in changes was preceded by
// GrowSuccesses probes of the new size in a row that got through.
func checkGrows(t *testing.T, probes []probe, got [][2]int, n int) {
	t.Helper()
	i := 0
	for _, c := range got {
		if c[1] <= c[0] {
			continue
		}
		// find the run of n successes at c[1] from i on
		run, found := 0, false
		for ; i < len(probes); i++ {
			if probes[i].size == c[1] && probes[i].ok {
				run++
				if run == n {
					found = true
					i++
					break
				}
			} else {
				run = 0
			}
		}
		if !found {
			t.Errorf("grow %d -> %d without %d probes of %d in a row", c[0], c[1], n, c[1])
		}
	}
}

func TestGrowOnlyAfterSuccessesInARow(t *testing.T) {
	f := newFakePath(1340)
	var ch changes
	s := newTestSearcher(f, &ch)
	s.full(context.Background())
	if e := s.Status().Effective; e != 1340 {
		t.Fatalf("effective %d, want 1340", e)
	}
	// The path is back at 1420, but every other probe of 1420 is lost:
	// the search sees 1420 (two tries a size), never three in a row.
	f.mu.Lock()
	f.up, f.down = 1420, 1420
	f.before = func(f *fakePath, n int) {
		f.dead = n%2 == 1
	}
	f.mu.Unlock()
	for range 5 {
		s.raise(context.Background())
	}
	if e := s.Status().Effective; e != 1340 {
		t.Errorf("grew to %d on alternating loss; want 1340 kept", e)
	}
	if p := s.Status().Path; p <= 1340 {
		t.Errorf("path %d: the search should have seen larger sizes get through", p)
	}
	f.mu.Lock()
	f.before, f.dead = nil, false
	f.mu.Unlock()
	s.raise(context.Background())
	if e := s.Status().Effective; e != 1420 {
		t.Errorf("effective %d after a clean raise, want 1420", e)
	}
	checkGrows(t, f.probes(), ch.list(), s.cfg.GrowSuccesses)
}

func TestFlappingPath(t *testing.T) {
	f := newFakePath(1420)
	// The path flips between 1420 and 1340 every 7 probes.
	f.before = func(f *fakePath, n int) {
		if (n/7)%2 == 0 {
			f.up, f.down = 1420, 1420
		} else {
			f.up, f.down = 1340, 1340
		}
	}
	var ch changes
	s := newTestSearcher(f, &ch)
	s.cfg.Interval = time.Hour // rounds below come faster than an interval: every shrink after a grow is a flap
	first := s.raiseWait
	for i := range 60 {
		switch i % 3 {
		case 0:
			s.full(context.Background())
		case 1:
			s.confirm(context.Background())
		default:
			s.raise(context.Background())
		}
		if e := s.Status().Effective; e < 1280 || e > 1420 {
			t.Fatalf("effective %d outside floor and ceiling", e)
		}
	}
	got := ch.list()
	if len(got) < 2 {
		t.Fatalf("changes %v: want the path's flips seen", got)
	}
	checkGrows(t, f.probes(), got, s.cfg.GrowSuccesses)
	if s.raiseWait <= first {
		t.Errorf("raise wait %v after flapping, want it longer than %v", s.raiseWait, first)
	}
	if s.raiseWait > s.cfg.Interval {
		t.Errorf("raise wait %v beyond the interval %v", s.raiseWait, s.cfg.Interval)
	}
}

// waitFor waits in a synctest bubble until cond holds, for at most d of the bubble's fake time.
// Each step lets every goroutine of the bubble run until it blocks, then moves the clock on by
// 10 ms: the wait follows the searcher's timers, never the machine's load.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for synctest.Wait(); !cond(); synctest.Wait() {
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v of fake time: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond) // fake time: returns once the bubble is idle
	}
}

// Run with the default intervals, on the fake clock: the path shrinks mid-run and is followed at
// the next confirmation (10 s), then grows back and is followed at the next raise (1 min).
func TestRunFollowsThePath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePath(1400)
		var ch changes
		s := NewSearcher(Config{Ceiling: 1420, OnChange: ch.record}, f)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		eff := func(want int) func() bool { return func() bool { return s.Status().Effective == want } }
		waitFor(t, "effective 1400 at start", 0, eff(1400))
		f.set(1360, 1360)
		waitFor(t, "effective 1360 at the next confirmation", s.cfg.ConfirmInterval, eff(1360))
		f.set(1500, 1500)
		waitFor(t, "effective 1420 at the next raise", s.cfg.RaiseInterval, eff(1420))
		checkGrows(t, f.probes(), ch.list(), 3)
	})
}

func TestRunConfirmsOnlyWhenActive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePath(1420)
		var active sync.Mutex
		isActive := false
		s := NewSearcher(Config{
			Ceiling:         1420,
			Interval:        time.Hour,
			ConfirmInterval: time.Millisecond,
			Active: func() bool {
				active.Lock()
				defer active.Unlock()
				a := isActive
				isActive = false
				return a
			},
		}, f)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		waitFor(t, "the first round", 10*time.Second, func() bool { return s.Status().State == StateOK })
		n := len(f.probes())
		time.Sleep(50 * time.Millisecond) // fake time: 50 confirmation intervals pass
		synctest.Wait()
		if m := len(f.probes()); m != n {
			t.Errorf("idle tunnel: %d probes after the first round, want none", m-n)
		}
		active.Lock()
		isActive = true
		active.Unlock()
		waitFor(t, "a confirmation once active", 10*time.Second, func() bool { return len(f.probes()) > n })
	})
}

func TestTriggerStartsARound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePath(1420)
		s := NewSearcher(Config{Ceiling: 1420, Interval: time.Hour, Active: func() bool { return false }}, f)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		waitFor(t, "the first round", 10*time.Second, func() bool { return s.Status().State == StateOK })
		f.set(1340, 1340)
		s.Trigger()
		waitFor(t, "the triggered round to shrink", 10*time.Second, func() bool { return s.Status().Effective == 1340 })
	})
}

func TestNoSearchWhenTheCeilingIsTheFloor(t *testing.T) {
	f := newFakePath(1420)
	s := NewSearcher(Config{Ceiling: 1280}, f)
	s.Run(context.Background()) // returns at once
	if n := len(f.probes()); n != 0 {
		t.Errorf("%d probes with ceiling = floor", n)
	}
	if st := s.Status(); st.Effective != 1280 || st.Ceiling != 1280 {
		t.Errorf("status %+v", st)
	}
}

// A tunnel that is down at start (no endpoint yet, no handshake) is retried
// soon, and the path is found once it is up.
func TestRunRetriesWhileDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePath(1340)
		f.dead = true
		s := NewSearcher(Config{Ceiling: 1420, Interval: time.Hour, DownRetry: 20 * time.Millisecond, Active: func() bool { return false }}, f)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		waitFor(t, "state down", 10*time.Second, func() bool { return s.Status().State == StateDown })
		if e := s.Status().Effective; e != 1420 {
			t.Errorf("effective %d while down, want the ceiling kept", e)
		}
		f.mu.Lock()
		f.dead = false
		f.mu.Unlock()
		waitFor(t, "the path found once the tunnel is up", 10*time.Second, func() bool { return s.Status().Effective == 1340 })
	})
}

// The first answer waits for a handshake; the round's timeout must come
// from a round trip without one, or every lost probe of the search costs the
// longest timeout.
func TestTimeoutFromARoundTripWithoutHandshake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePath(1340)
		f.delay = func(n int) time.Duration {
			if n == 0 {
				return 300 * time.Millisecond // the handshake (fake time: Probe sleeps in the bubble)
			}
			return 0
		}
		s := NewSearcher(Config{Ceiling: 1420, MinTimeout: 10 * time.Millisecond}, f)
		s.full(context.Background())
		// From the handshake's answer it would be 4 x 300 ms.
		if s.timeout >= time.Second {
			t.Errorf("probe timeout %v after a handshake of 300 ms and instant answers, want it from an instant round trip", s.timeout)
		}
	})
}
