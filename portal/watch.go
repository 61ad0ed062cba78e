package portal

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// DefaultInterval is the time between checks while the tunnel is down.
const DefaultInterval = 15 * time.Second

// WatcherConfig is everything a Watcher needs, given at construction.
type WatcherConfig struct {
	// Detect makes one check: (*Detector).Detect in production.
	Detect func(context.Context) Result
	// TunnelUp reports whether the tunnel's handshakes succeed; while they
	// do, nothing is checked (a portal lets no handshake through).
	TunnelUp func() bool
	// Interval is the time between checks while the tunnel is down; 0 is
	// DefaultInterval. It is also how soon a tunnel that goes down is
	// noticed.
	Interval time.Duration
	// Hint ends the warning when a portal is found: what the owner does,
	// e.g. "open a window for one device: fobgw portal open -config
	// /etc/fobgw/fobgw.conf DEVICE". Empty: the warning says no more.
	Hint   string
	Logger *slog.Logger
}

// Watcher checks for a portal while the tunnel is down: once at start, then
// every Interval as long as it stays down; again after the tunnel comes up
// and goes down again (a portal whose session ended). It logs one warning
// when a portal appears and one line when it is gone.
type Watcher struct {
	cfg WatcherConfig
	log *slog.Logger

	mu     sync.Mutex
	status WatchStatus // protected by mu
}

// WatchStatus is what the Watcher knows, for status and metrics.
type WatchStatus struct {
	// Result is the latest check, or State None with no Status after the
	// tunnel came up (a handshake went through: nothing is in the way).
	Result
	// Since is when the portal now seen was first seen (State Portal).
	Since time.Time `json:"since,omitzero"`
	// Checks counts checks made; Found counts portals that appeared (a
	// portal seen at start, or after none was, or after the tunnel was up).
	Checks uint64 `json:"checks"`
	Found  uint64 `json:"found"`
}

// NewWatcher returns a Watcher; Run starts it.
func NewWatcher(cfg WatcherConfig) *Watcher {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{cfg: cfg, log: log}
}

// Run checks until ctx is done.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.step(ctx)
		t.Reset(w.cfg.Interval)
	}
}

// Status returns what the Watcher knows now.
func (w *Watcher) Status() WatchStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

func (w *Watcher) step(ctx context.Context) {
	if w.cfg.TunnelUp() {
		w.mu.Lock()
		prev := w.status.State
		if prev != None || w.status.Status != 0 {
			w.status.Result = Result{State: None, At: time.Now()}
			w.status.Since = time.Time{}
		}
		w.mu.Unlock()
		if prev == Portal {
			w.log.Info("captive portal passed: the tunnel has a handshake again")
		}
		return
	}
	res := w.cfg.Detect(ctx)
	if ctx.Err() != nil {
		return // stopping: a cancelled check says nothing about the network
	}
	w.mu.Lock()
	prev := w.status.State
	w.status.Checks++
	switch {
	case res.State == Unknown && prev == Portal:
		// No answer says nothing new: the portal last seen stays, with the
		// time it was seen.
	case res.State == Portal && prev != Portal:
		w.status.Found++
		w.status.Since = res.At
		w.status.Result = res
	case res.State == Portal:
		w.status.Result = res // the same portal episode
	default:
		w.status.Result = res
		w.status.Since = time.Time{}
	}
	w.mu.Unlock()
	switch {
	case res.State == Portal && prev != Portal:
		args := []any{"url", res.URL, "status", res.Status}
		msg := "captive portal: the local network wants a login before the tunnel can come up"
		if w.cfg.Hint != "" {
			msg += "; " + w.cfg.Hint
		}
		w.log.Warn(msg, args...)
	case res.State == None && prev == Portal:
		w.log.Info("captive portal passed: the check gets its expected answer")
	}
}
