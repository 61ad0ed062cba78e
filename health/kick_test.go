package health

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// kickPeer is a WireGuard peer for the kick: its last handshake, bytes
// received, and when a handshake was started.
type kickPeer struct {
	mu        sync.Mutex
	handshake time.Time   // protected by mu
	rx        uint64      // protected by mu
	started   []time.Time // protected by mu
	err       error       // StartHandshake's; protected by mu
	answer    bool        // a started handshake completes at once; protected by mu
}

func (p *kickPeer) StartHandshake() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	p.started = append(p.started, time.Now())
	if p.answer {
		p.handshake = time.Now()
		p.rx += 92 // the handshake response
	}
	return nil
}

func (p *kickPeer) LastHandshake() (time.Time, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.handshake, nil
}

func (p *kickPeer) RxBytes() (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rx, nil
}

func (p *kickPeer) receive(n uint64) {
	p.mu.Lock()
	p.rx += n
	p.mu.Unlock()
}

func (p *kickPeer) kicks() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.started...)
}

// kickTarget is the probe target behind the peer: it answers after delay,
// except after the peer lost the session (it restarted), until a handshake
// made a new one; each answer is bytes received from the peer.
type kickTarget struct {
	peer   *kickPeer
	delay  time.Duration
	mu     sync.Mutex
	lostAt time.Time // when the peer lost the session; zero: never; protected by mu
}

// lose is the peer's restart: the session is gone.
func (p *kickTarget) lose() {
	p.mu.Lock()
	p.lostAt = time.Now()
	p.mu.Unlock()
}

func (p *kickTarget) Probe(ctx context.Context) error {
	p.mu.Lock()
	lostAt := p.lostAt
	p.mu.Unlock()
	hs, _ := p.peer.LastHandshake()
	if !lostAt.IsZero() && !hs.After(lostAt) {
		<-ctx.Done()
		return errors.New("no answer")
	}
	select {
	case <-ctx.Done():
		return errors.New("no answer")
	case <-time.After(p.delay):
		p.peer.receive(96)
		return nil
	}
}

// probeEvery probes through k as the healer does, every ProbeInterval with
// ProbeTimeout, until stop; it runs in the test's bubble.
func probeEvery(k *Kick, stop time.Time) {
	for time.Now().Before(stop) {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), ProbeTimeout)
		k.Probe(ctx)
		cancel()
		time.Sleep(ProbeInterval - time.Since(start)) // fake time (synctest): the probes' interval
	}
}

// every calls f now and every d until stop, which returns once it has
// stopped.
func every(d time.Duration, f func()) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			f()
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(quit); <-done }
}

// newTestKick is the kick on peer and target as the gateway makes it, with
// the bubble's clock; it is closed when the test ends.
func newTestKick(t *testing.T, peer *kickPeer, target *kickTarget) *Kick {
	k := newHandshakeKick(target, peer, systemClock{}, defaultKickConfig(), discardLogger())
	t.Cleanup(k.Close)
	return k
}

func TestKickNotWhileAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		peer := &kickPeer{handshake: time.Now().Add(-100 * time.Second)}
		k := newTestKick(t, peer, &kickTarget{peer: peer, delay: 20 * time.Millisecond})
		probeEvery(k, time.Now().Add(time.Minute))
		if got := peer.kicks(); len(got) != 0 || k.Kicks() != 0 {
			t.Errorf("%d handshakes started (counted %d) while every probe was answered, want none", len(got), k.Kicks())
		}
	})
}

// TestKickOnMiss: the peer stops answering with a session older than
// RekeyTimeout; a handshake starts halfway to the first unanswered probe's
// timeout, and is counted.
func TestKickOnMiss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		peer := &kickPeer{handshake: time.Now().Add(-60 * time.Second)}
		target := &kickTarget{peer: peer, delay: time.Millisecond}
		k := newTestKick(t, peer, target)
		probeEvery(k, time.Now().Add(2*ProbeInterval))
		target.lose()
		down := time.Now()
		probeEvery(k, down.Add(time.Second))
		got := peer.kicks()
		if len(got) != 1 || k.Kicks() != 1 {
			t.Fatalf("%d handshakes started (counted %d) after one unanswered probe, want 1", len(got), k.Kicks())
		}
		if d := got[0].Sub(down); d != ProbeTimeout/2 {
			t.Errorf("handshake started %v after the probe was sent, want %v (halfway to its timeout)", d, ProbeTimeout/2)
		}
	})
}

// TestKickNotWhenSessionFresh: no handshake while the session is younger
// than RekeyTimeout; the first once it is older.
func TestKickNotWhenSessionFresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := time.Now().Add(-time.Second)
		peer := &kickPeer{handshake: hs}
		target := &kickTarget{peer: peer, lostAt: time.Now()}
		k := newTestKick(t, peer, target)
		probeEvery(k, time.Now().Add(time.Second)) // one probe: halfway and end at 2 and 3 s of age
		if n := len(peer.kicks()); n != 0 {
			t.Fatalf("%d handshakes started with a session younger than %v", n, RekeyTimeout)
		}
		probeEvery(k, time.Now().Add(time.Second)) // the next: halfway at 5 s of age
		got := peer.kicks()
		if len(got) != 1 {
			t.Fatalf("%d handshakes started once the session was older than %v, want 1", len(got), RekeyTimeout)
		}
		if age := got[0].Sub(hs); age < RekeyTimeout {
			t.Errorf("handshake started with a session %v old, want at least %v", age, RekeyTimeout)
		}
	})
}

// TestKickRateLimit: while the peer stays silent (a minute), one handshake
// per RekeyTimeout at most, and they go on, each just after RekeyTimeout;
// every one counted. None after close.
func TestKickRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		peer := &kickPeer{handshake: time.Now().Add(-60 * time.Second)}
		k := newTestKick(t, peer, &kickTarget{peer: peer, lostAt: time.Now()})
		start := time.Now()
		probeEvery(k, start.Add(time.Minute))
		got := peer.kicks()
		for i := 1; i < len(got); i++ {
			if d := got[i].Sub(got[i-1]); d < RekeyTimeout || d > RekeyTimeout+retryMargin {
				t.Errorf("handshakes %d and %d started %v apart, want %v to %v", i, i+1, d, RekeyTimeout, RekeyTimeout+retryMargin)
			}
		}
		// The first halfway to the first probe's timeout, then every 5.01 s: 12 in the minute.
		if len(got) != 12 || k.Kicks() != 12 {
			t.Errorf("%d handshakes started (counted %d) in a silent minute since %v, want 12: %v", len(got), k.Kicks(), start, got)
		}
		k.Close()
		time.Sleep(time.Minute) // fake time (synctest): a minute after close
		if n := len(peer.kicks()); n != len(got) {
			t.Errorf("%d handshakes started after close", n-len(got))
		}
	})
}

// TestKickRetryEndsWithAnswer: the peer answers the second handshake (it
// was away for the first): no third.
func TestKickRetryEndsWithAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		peer := &kickPeer{handshake: time.Now().Add(-60 * time.Second)}
		target := &kickTarget{peer: peer, delay: time.Millisecond}
		k := newTestKick(t, peer, target)
		probeEvery(k, time.Now().Add(ProbeInterval))
		target.lose()
		done := make(chan struct{})
		go func() { probeEvery(k, time.Now().Add(30*time.Second)); close(done) }()
		time.Sleep(ProbeTimeout) // past the first kick, halfway to the timeout
		if n := len(peer.kicks()); n != 1 {
			t.Errorf("%d handshakes started at the first miss, want 1", n)
		}
		peer.mu.Lock() // back: the next handshake is answered
		peer.answer = true
		peer.mu.Unlock()
		<-done
		if n := len(peer.kicks()); n != 2 {
			t.Errorf("%d handshakes started, want 2: the first while the peer was away, the retry it answered", n)
		}
	})
}

// TestKickNotWhilePeerSends: unanswered probes do not start a handshake
// while the peer sends: the LAN's traffic while the probe target is away,
// or a target that never answers probes while the peer's keepalives come
// every 10 s. Once the peer falls silent too, the handshake starts.
func TestKickNotWhilePeerSends(t *testing.T) {
	t.Run("traffic during the probe", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			peer := &kickPeer{handshake: time.Now().Add(-60 * time.Second)}
			target := &kickTarget{peer: peer, delay: time.Millisecond}
			k := newTestKick(t, peer, target)
			probeEvery(k, time.Now().Add(ProbeInterval))
			target.lose()
			stop := every(100*time.Millisecond, func() { peer.receive(1400) })
			probeEvery(k, time.Now().Add(time.Minute))
			stop()
			if n := len(peer.kicks()); n != 0 {
				t.Errorf("%d handshakes started while the peer sent all along", n)
			}
		})
	})
	t.Run("silent target, keepalives", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			peer := &kickPeer{handshake: time.Now().Add(-60 * time.Second)}
			k := newTestKick(t, peer, &kickTarget{peer: peer, lostAt: time.Now()})
			stop := every(KeepaliveTimeout, func() { peer.receive(32) })
			probeEvery(k, time.Now().Add(time.Minute))
			stop()
			if n := len(peer.kicks()); n != 0 {
				t.Fatalf("%d handshakes started while keepalives came every %v", n, KeepaliveTimeout)
			}
			// The keepalives stop: a handshake within RxAlive and a probe.
			quiet := time.Now()
			probeEvery(k, quiet.Add(KeepaliveTimeout+2*ProbeInterval))
			got := peer.kicks()
			if len(got) == 0 {
				t.Fatalf("no handshake started %v after the peer fell silent", time.Since(quiet))
			}
			if d := got[0].Sub(quiet); d > KeepaliveTimeout+2*ProbeInterval {
				t.Errorf("handshake started %v after the peer fell silent", d)
			}
		})
	})
}

// TestKickStartFails: a handshake WireGuard refused to start is not counted.
func TestKickStartFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		peer := &kickPeer{handshake: time.Now().Add(-60 * time.Second), err: errors.New("no known endpoint for peer")}
		k := newTestKick(t, peer, &kickTarget{peer: peer, lostAt: time.Now()})
		probeEvery(k, time.Now().Add(10*time.Second))
		if k.Kicks() != 0 {
			t.Errorf("counted %d handshakes WireGuard refused to start", k.Kicks())
		}
	})
}
