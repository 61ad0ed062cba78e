package health

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// The handshake kick: when the home peer has lost its session (its
// WireGuard restarted: same key, no session, and no memory of our endpoint,
// so only we can start again), WireGuard itself starts a new handshake only
// after KeepaliveTimeout + RekeyTimeout (15 s) of data sent and nothing
// received. The probe knows sooner: a probe unanswered halfway to its
// timeout, with nothing at all received from the peer meanwhile, means the
// peer has stopped answering, and a handshake started at once brings the
// session back within a round trip once the peer is there.
//
// Why halfway (the probe's own re-send point, ProbeTimeout/2 = 1 s) and not
// at the timeout: a restart is seen by the first probe sent after it, at
// most ProbeInterval (3 s) later; kicking at the timeout (2 s) would put a
// quick restart's worst case at 5 s plus a round trip and the client's
// next packet, past the 5 s the gateway promises; halfway it is 4 s. The
// price is that one lost probe datagram on an otherwise idle tunnel may
// cost one handshake (240 bytes), at most one per RekeyTimeout.
//
// A kick sent while the peer is still away (a restart that takes longer
// than that second, a reboot) is lost, and no other may follow within
// RekeyTimeout. WireGuard retries after RekeyTimeout plus up to 334 ms of
// jitter; the kick retries just after RekeyTimeout instead, while the peer
// stays silent, so that the peer is answered within RekeyTimeout (plus a
// round trip) of its return however the tries fall.

// RekeyTimeout is WireGuard's REKEY_TIMEOUT: it sends no handshake
// initiation within this long of the last one, and retries an unanswered
// one after it (plus up to 334 ms of jitter).
const RekeyTimeout = 5 * time.Second

// HandshakeStarter is the part of the WireGuard device the kick drives.
type HandshakeStarter interface {
	// StartHandshake asks WireGuard to send a handshake initiation now
	// and to keep retrying it every RekeyTimeout until answered, as if
	// it had decided so itself; it sends nothing when it sent one less
	// than RekeyTimeout ago.
	StartHandshake() error
	LastHandshake() (time.Time, error) // zero: none yet
	RxBytes() (uint64, error)          // bytes received from the peer, monotonic
}

// kickClock is the kick's time: the system's in production.
type kickClock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d, unless stop is
	// called first (stop reports whether it was).
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// systemClock is kickClock on the time package.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// kickConfig is how the kick decides; defaultKickConfig is production's.
type kickConfig struct {
	// MinAge: no kick while the session (the last handshake) is younger
	// than this (RekeyTimeout): it is the peer's answer to a recent
	// handshake.
	MinAge time.Duration
	// Every: at most one kick this often while the peer stays silent
	// (RekeyTimeout, as WireGuard's own retries).
	Every time.Duration
	// RxAlive: while the probe target has not answered within this long
	// (it drops the probes: a Pi-hole that ignores them, say), the peer
	// counts as silent only when nothing was received from it within
	// RxAlive either (the healer's KeepaliveTimeout + ProbeInterval).
	RxAlive time.Duration
}

func defaultKickConfig() kickConfig {
	return kickConfig{MinAge: RekeyTimeout, Every: RekeyTimeout, RxAlive: KeepaliveTimeout + ProbeInterval}
}

// retryMargin is how long after Every the kick retries. WireGuard silently
// refuses an initiation within RekeyTimeout of its last, which it notes
// before the kick's own time is read (after the call), and both are
// monotonic, so a millisecond is enough: every millisecond more is one more
// that a home router coming back waits.
const retryMargin = time.Millisecond

// Kick passes the healer's probes on and starts a handshake at
// once when one goes unanswered while the peer is silent and the session is
// older than MinAge, at most once per Every; while the peer stays silent it
// starts another Every (and retryMargin) after each. Nothing changes while
// the tunnel answers. Probe is called by one goroutine at a time; close
// stops the retries.
type Kick struct {
	Prober // the probe watched
	peer   HandshakeStarter
	clk    kickClock
	cfg    kickConfig
	log    *slog.Logger

	kicks atomic.Uint64 // handshakes started, for status and metrics

	mu           sync.Mutex
	probing      uint64      // the probe in flight (a sequence number), 0: none; protected by mu
	lastRx       uint64      // rx bytes at the last sample; protected by mu
	lastRxChange time.Time   // when rx bytes last moved; zero: not seen; protected by mu
	lastAnswer   time.Time   // the last answered probe; protected by mu
	lastKick     time.Time   // protected by mu
	silent       bool        // kicked since the last answer (for the log); protected by mu
	seq          uint64      // probes so far; protected by mu
	retryRx      uint64      // rx bytes at the last kick; protected by mu
	stopRetry    func() bool // cancels the pending retry; nil: none; protected by mu
	closed       bool        // protected by mu
}

// NewKick returns the kick around probe for peer, on the system's clock:
// pass it to New as the healer's Prober. Close it before the device goes.
func NewKick(probe Prober, peer HandshakeStarter, log *slog.Logger) *Kick {
	return newHandshakeKick(probe, peer, systemClock{}, defaultKickConfig(), log)
}

func newHandshakeKick(probe Prober, peer HandshakeStarter, clk kickClock, cfg kickConfig, log *slog.Logger) *Kick {
	return &Kick{Prober: probe, peer: peer, clk: clk, cfg: cfg, log: log}
}

// Kicks is how many handshakes the kick started.
func (k *Kick) Kicks() uint64 { return k.kicks.Load() }

// Probe sends the probe through the wrapped prober. Halfway to ctx's
// deadline, and when the probe ends unanswered, it decides whether to
// start a handshake.
func (k *Kick) Probe(ctx context.Context) error {
	start := k.clk.Now()
	k.mu.Lock()
	k.seq++
	id := k.seq
	k.probing = id
	probeRx := k.sampleRx(start) // what the peer had sent when the probe left
	k.mu.Unlock()
	var stop func() bool
	if dl, ok := ctx.Deadline(); ok {
		stop = k.clk.AfterFunc(dl.Sub(start)/2, func() { k.check(id, probeRx) })
	}
	err := k.Prober.Probe(ctx)
	if stop != nil {
		stop()
	}
	now := k.clk.Now()
	k.mu.Lock()
	k.probing = 0
	if err == nil {
		k.lastAnswer = now
		if k.stopRetry != nil {
			k.stopRetry()
			k.stopRetry = nil
		}
		if k.silent {
			k.silent = false
			k.log.Info("the peer answers again", "handshakes_started", k.kicks.Load())
		}
	}
	k.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		k.mu.Lock()
		k.decide(now, probeRx)
		k.mu.Unlock()
	}
	return err
}

// check is the halfway decision for probe id, if it is still unanswered.
func (k *Kick) check(id, probeRx uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.probing != id {
		return // answered, or ended, meanwhile
	}
	k.decide(k.clk.Now(), probeRx)
}

// retry is the decision Every after a kick: another if nothing came since.
func (k *Kick) retry() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stopRetry = nil
	if !k.closed {
		k.decide(k.clk.Now(), k.retryRx)
	}
}

// Close stops the retries; the kick starts no handshake after it.
func (k *Kick) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed = true
	if k.stopRetry != nil {
		k.stopRetry()
		k.stopRetry = nil
	}
}

// decide starts a handshake when the peer is silent (nothing received
// since rx was since), the session older than MinAge and the last kick at
// least Every ago, and sets the retry. Called with mu held.
func (k *Kick) decide(now time.Time, since uint64) {
	if k.closed {
		return
	}
	rx := k.sampleRx(now)
	if !k.peerSilent(now, rx, since) {
		return
	}
	hs, err := k.peer.LastHandshake()
	if err != nil || (!hs.IsZero() && now.Sub(hs) < k.cfg.MinAge) {
		return
	}
	if !k.lastKick.IsZero() && now.Sub(k.lastKick) < k.cfg.Every {
		return
	}
	if err := k.peer.StartHandshake(); err != nil {
		k.log.Warn("starting a handshake failed", "err", err)
		return
	}
	// After the call: WireGuard noted its initiation's time in it, and
	// the retry must not come within RekeyTimeout of that.
	k.lastKick = k.clk.Now()
	n := k.kicks.Add(1)
	if k.stopRetry != nil {
		k.stopRetry()
	}
	k.retryRx = rx
	k.stopRetry = k.clk.AfterFunc(k.cfg.Every+retryMargin, k.retry)
	if !k.silent {
		k.silent = true
		var age time.Duration
		if !hs.IsZero() {
			age = now.Sub(hs).Round(time.Second)
		}
		k.log.Info("the peer stopped answering: handshake started at once", "session_age", age, "handshakes_started", n)
		return
	}
	k.log.Debug("the peer is still silent: handshake started", "handshakes_started", n)
}

// peerSilent reports whether nothing proves the session alive: nothing
// received since (rx bytes then), or, while the probe target is not
// answering probes at all, nothing received within RxAlive. Called with mu
// held.
func (k *Kick) peerSilent(now time.Time, rx, since uint64) bool {
	if rx != since {
		return false
	}
	targetAnswers := !k.lastAnswer.IsZero() && now.Sub(k.lastAnswer) <= k.cfg.RxAlive
	if targetAnswers {
		return true
	}
	return k.lastRxChange.IsZero() || now.Sub(k.lastRxChange) > k.cfg.RxAlive
}

// sampleRx reads the bytes received from the peer and notes when they
// moved; on error it returns the last value. Called with mu held.
func (k *Kick) sampleRx(now time.Time) uint64 {
	rx, err := k.peer.RxBytes()
	if err != nil {
		return k.lastRx
	}
	if rx != k.lastRx {
		k.lastRxChange = now
	}
	k.lastRx = rx
	return rx
}
