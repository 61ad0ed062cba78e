package statuspage

import (
	"context"
	"math"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

var t0 = time.Date(2026, 11, 28, 14, 2, 0, 0, time.UTC)

func TestSamplerRates(t *testing.T) {
	s := NewSampler(5 * time.Second)
	// 10 s at 1 MB/s in and 125 kB/s out, then the device restarts
	// (counters back to 0), then a 30 s gap, then 5 s at 2 MB/s.
	s.Sample(t0, 0, 0, true)
	s.Sample(t0.Add(5*time.Second), 5e6, 625e3, true)
	s.Sample(t0.Add(10*time.Second), 10e6, 1250e3, false)
	s.Sample(t0.Add(15*time.Second), 0, 0, false)
	s.Sample(t0.Add(45*time.Second), 1e6, 0, true)
	s.Sample(t0.Add(50*time.Second), 11e6, 0, true)
	got := s.Rates(nil, t0.Add(50*time.Second))
	want := []Rate{
		{T: t0.Add(5 * time.Second), In: 8e6, Out: 1e6, Home: true, Break: true},
		{T: t0.Add(10 * time.Second), In: 8e6, Out: 1e6, Home: false},
		{T: t0.Add(50 * time.Second), In: 16e6, Out: 0, Home: true, Break: true},
	}
	if len(got) != len(want) {
		t.Fatalf("rates %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.T.Equal(w.T) || math.Abs(g.In-w.In) > 1e-6 || math.Abs(g.Out-w.Out) > 1e-6 || g.Home != w.Home || g.Break != w.Break {
			t.Errorf("rate %d: %+v, want %+v", i, g, w)
		}
	}
}

// TestSamplerWindow: the ring holds Window's worth and no more; rates older
// than the window are left out.
func TestSamplerWindow(t *testing.T) {
	s := NewSampler(5 * time.Second)
	n := 3 * int(Window/(5*time.Second)) // three windows
	var now time.Time
	for i := 0; i <= n; i++ {
		now = t0.Add(time.Duration(i) * 5 * time.Second)
		s.Sample(now, uint64(i)*1000, uint64(i)*500, true)
	}
	rates := s.Rates(nil, now)
	if want := int(Window / (5 * time.Second)); len(rates) != want {
		t.Errorf("%d rates over the window, want %d", len(rates), want)
	}
	for _, r := range rates {
		if now.Sub(r.T) > Window {
			t.Errorf("rate at %v is older than the window ending %v", r.T, now)
		}
		if r.In != 1600 || r.Out != 800 {
			t.Errorf("rate %+v, want 1600 and 800 bit/s", r)
		}
	}
	if cap(s.ring) != len(s.ring) || len(s.ring) != int(Window/(5*time.Second))+2 {
		t.Errorf("ring of %d samples", len(s.ring))
	}
}

func TestSamplerState(t *testing.T) {
	s := NewSampler(time.Second)
	if _, _, ok := s.State(); ok {
		t.Fatal("state before the first sample")
	}
	steps := []struct {
		at    int
		home  bool
		since int
	}{
		{0, false, 0},
		{1, false, 0},
		{2, true, 2},
		{3, true, 2},
		{9, true, 2},
		{10, false, 10},
	}
	for _, st := range steps {
		s.Sample(t0.Add(time.Duration(st.at)*time.Second), 0, 0, st.home)
		home, since, ok := s.State()
		if !ok || home != st.home || !since.Equal(t0.Add(time.Duration(st.since)*time.Second)) {
			t.Errorf("after the sample at %d s: home %v since %v; want %v since %d s", st.at, home, since.Sub(t0), st.home, st.since)
		}
	}
}

func TestSampleAllocatesNothing(t *testing.T) {
	s := NewSampler(time.Second)
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		i++
		s.Sample(t0.Add(time.Duration(i)*time.Second), uint64(i), uint64(i), i%7 != 0)
	})
	if allocs != 0 {
		t.Errorf("Sample allocates %v times a call, want 0", allocs)
	}
}

// TestSamplerRun: Run reads the counters every interval. Fake time
// (synctest): five intervals pass without waiting.
func TestSamplerRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewSampler(5 * time.Second)
		var reads atomic.Int64
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Run(ctx, func() (time.Time, uint64, uint64, bool) {
				n := reads.Add(1)
				return time.Now(), uint64(n) * 100, uint64(n) * 10, true
			})
		}()
		time.Sleep(25*time.Second + time.Millisecond) // fake time: five intervals
		synctest.Wait()
		cancel()
		<-done
		if n := reads.Load(); n < 5 || n > 6 {
			t.Fatalf("Run read the counters %d times in five intervals", n)
		}
		if rates := s.Rates(nil, time.Now()); len(rates) < 3 {
			t.Errorf("%d rates after Run, want several", len(rates))
		}
	})
}

func BenchmarkSample(b *testing.B) {
	s := NewSampler(5 * time.Second)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Sample(t0.Add(time.Duration(i)*5*time.Second), uint64(i), uint64(i), true)
	}
}
