package portal

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// script is a fake check: it answers what the test says and records when it
// was asked.
type script struct {
	mu     sync.Mutex
	answer State
	asked  []time.Duration // since start
	start  time.Time
}

func (s *script) detect(context.Context) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, time.Since(s.start))
	r := Result{State: s.answer, At: time.Now()}
	switch s.answer {
	case Portal:
		r.URL, r.Status = "http://portal.example/", 302
	case None:
		r.Status = 204
	case Unknown:
		r.Error = "no answer in time"
	}
	return r
}

func (s *script) set(st State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answer = st
}

func (s *script) times() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.asked...)
}

// syncBuffer is a log sink safe for the watcher's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func secs(ds ...int) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = time.Duration(d) * time.Second
	}
	return out
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The schedule: a check at start, then every Interval while the tunnel is
// down; none while it is up; checks again when it goes down again, where a
// portal found anew (a session that expired) warns again, once.
func TestWatcherSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{answer: Portal, start: time.Now()}
		var up atomic.Bool
		var logs syncBuffer
		w := NewWatcher(WatcherConfig{
			Detect:   s.detect,
			TunnelUp: up.Load,
			Interval: 10 * time.Second,
			Hint:     "open a window: fobgw portal open DEVICE",
			Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
		})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { w.Run(ctx); close(done) }()

		// At start, the tunnel is down: checked at once, a portal.
		synctest.Wait()
		if got := s.times(); !equalDurations(got, secs(0)) {
			t.Fatalf("checks at %v, want one at start", got)
		}
		st := w.Status()
		if st.State != Portal || st.URL != "http://portal.example/" || st.Found != 1 || st.Checks != 1 || !st.Since.Equal(s.start) {
			t.Fatalf("status after the first check = %+v", st)
		}

		// Still down: every 10 s; the same portal warns no more.
		time.Sleep(25 * time.Second)
		synctest.Wait()
		if got := s.times(); !equalDurations(got, secs(0, 10, 20)) {
			t.Fatalf("checks at %v, want 0s 10s 20s", got)
		}
		// A check without an answer keeps the portal known.
		s.set(Unknown)
		time.Sleep(10 * time.Second) // t=35, check at 30
		synctest.Wait()
		if st := w.Status(); st.State != Portal || st.Found != 1 || st.URL == "" || st.Checks != 4 {
			t.Fatalf("after an unanswered check: %+v, want the portal still", st)
		}

		// Someone logged in: the tunnel is up, no more checks.
		up.Store(true)
		time.Sleep(10 * time.Second) // t=45 (step at 40)
		synctest.Wait()
		if st := w.Status(); st.State != None || st.Status != 0 || !st.Since.IsZero() {
			t.Fatalf("with the tunnel up: %+v, want none", st)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := s.times(); len(got) != 4 {
			t.Fatalf("checks at %v, want none while the tunnel is up", got)
		}

		// A day later the portal's session ends: the tunnel goes down, and
		// the next step checks and finds the portal again.
		s.set(Portal)
		time.Sleep(24 * time.Hour)
		downAt := time.Since(s.start)
		up.Store(false)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		got := s.times()
		if len(got) != 5 || got[4]-downAt > 10*time.Second {
			t.Fatalf("checks at %v, want one within 10 s of the tunnel going down at %v", got, downAt)
		}
		if st := w.Status(); st.State != Portal || st.Found != 2 {
			t.Fatalf("after the session expired: %+v, want a portal found twice", st)
		}

		cancel()
		<-done
		out := logs.String()
		if n := strings.Count(out, "captive portal: the local network wants a login"); n != 2 {
			t.Errorf("%d portal warnings, want 2 (one each time it appeared):\n%s", n, out)
		}
		if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "fobgw portal open DEVICE") || !strings.Contains(out, "url=http://portal.example/") {
			t.Errorf("the warning does not say where and what to do:\n%s", out)
		}
		if !strings.Contains(out, "captive portal passed") {
			t.Errorf("no line when the portal was passed:\n%s", out)
		}
	})
}

// No portal, then one: found once; none again ends the episode.
func TestWatcherNoneThenPortal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{answer: None, start: time.Now()}
		w := NewWatcher(WatcherConfig{Detect: s.detect, TunnelUp: func() bool { return false }})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go w.Run(ctx)
		synctest.Wait()
		if st := w.Status(); st.State != None || st.Found != 0 {
			t.Fatalf("%+v, want none", st)
		}
		s.set(Portal)
		time.Sleep(DefaultInterval)
		synctest.Wait()
		if st := w.Status(); st.State != Portal || st.Found != 1 {
			t.Fatalf("%+v, want a portal", st)
		}
		s.set(None)
		time.Sleep(DefaultInterval)
		synctest.Wait()
		if st := w.Status(); st.State != None || !st.Since.IsZero() || st.Checks != 3 {
			t.Fatalf("%+v, want none after 3 checks", st)
		}
	})
}
