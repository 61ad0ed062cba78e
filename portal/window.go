package portal

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

const (
	// DefaultWindow is a window's length when the owner names none.
	DefaultWindow = 10 * time.Minute
	// MaxWindow is the longest window: long enough to log in, short enough
	// that a forgotten window does not leave a device outside the tunnel.
	MaxWindow = 30 * time.Minute
)

// ErrBusy is Open's error while a window is open for another device: one
// device at a time. Not fatal: close it first.
var ErrBusy = errors.New("a window is open for another device")

// CheckLength says what is wrong with a window's length, or nil. The error
// is a *ValueError, for a command-line flag as for a form.
func CheckLength(d time.Duration) error {
	switch {
	case d <= 0:
		return &ValueError{Problem: fmt.Sprintf("window length %v is not positive", d), Expected: fmt.Sprintf("a length up to %v, e.g. 10m (the default)", MaxWindow)}
	case d > MaxWindow:
		return &ValueError{Problem: fmt.Sprintf("window length %v is longer than %v", d, MaxWindow), Expected: fmt.Sprintf("at most %v: open it again if the login takes longer", MaxWindow)}
	}
	return nil
}

// Marker makes a window true on the system: the device's packets marked to
// leave directly (masqueraded) and its DNS answered through the local ISP's
// resolver. The gateway gives one to NewWindow.
type Marker interface {
	// Mark lets d out directly until until. Marking an already marked
	// device again moves its end. The system may end it at until by itself
	// (an nftables element's timeout), so that a stopped gateway leaves no
	// window open.
	Mark(d Device, until time.Time) error
	// Unmark sends d home again.
	Unmark(d Device) error
}

// CloseReason is why a window closed.
type CloseReason uint8

const (
	ClosedByOwner     CloseReason = iota + 1 // Close: `fobgw portal close`
	ClosedByHandshake                        // the first handshake after the window opened
	ClosedByTimeout                          // the end of its time
)

func (r CloseReason) String() string {
	switch r {
	case ClosedByOwner:
		return "owner"
	case ClosedByHandshake:
		return "handshake"
	case ClosedByTimeout:
		return "timeout"
	default:
		return "none"
	}
}

// MarshalText gives the reason's name in JSON.
func (r CloseReason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a reason's name.
func (r *CloseReason) UnmarshalText(b []byte) error {
	for _, c := range []CloseReason{0, ClosedByOwner, ClosedByHandshake, ClosedByTimeout} {
		if c.String() == string(b) {
			*r = c
			return nil
		}
	}
	return fmt.Errorf("window close reason %q: want owner, handshake, timeout or none", b)
}

// WindowState is a window, open or the last one closed.
type WindowState struct {
	Open   bool      `json:"open"`
	Device Device    `json:"device"`
	By     string    `json:"by,omitempty"` // who opened it: "command", "page"
	Opened time.Time `json:"opened,omitzero"`
	Until  time.Time `json:"until,omitzero"`
	// Closed and Reason: when and why the last window closed (Open false).
	Closed time.Time   `json:"closed,omitzero"`
	Reason CloseReason `json:"reason,omitempty"`
}

// WindowCounts counts windows since start, for status and metrics.
type WindowCounts struct {
	Opened            uint64 `json:"opened"`
	ClosedByHandshake uint64 `json:"closed_by_handshake"`
	ClosedByTimeout   uint64 `json:"closed_by_timeout"`
	ClosedByOwner     uint64 `json:"closed_by_owner"`
}

// Window is the portal window: at most one device let out directly, for a
// limited time. It is plain state: every method takes the time, and Observe
// must be called often (each health step) to close the window at its end or
// at the first handshake. Its Marker makes it true on the system.
type Window struct {
	marker Marker
	log    *slog.Logger

	mu        sync.Mutex
	state     WindowState  // protected by mu
	handshake time.Time    // the latest handshake when the window opened; protected by mu
	counts    WindowCounts // protected by mu
}

// NewWindow returns a closed window whose changes m makes true (nil: none,
// for tests).
func NewWindow(m Marker, log *slog.Logger) *Window {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Window{marker: m, log: log}
}

// Open opens the window for d for length from now, as asked by by
// ("command", "page"). handshake is the latest handshake as observed now
// (zero: none yet): the window closes at the first one after it. Opening it
// again for the same device moves its end; for another device it is ErrBusy.
// When the Marker fails, nothing is open.
func (w *Window) Open(now time.Time, d Device, length time.Duration, by string, handshake time.Time) (WindowState, error) {
	if d.IsZero() {
		return WindowState{}, errors.New("open a window: no device")
	}
	if err := CheckLength(length); err != nil {
		return WindowState{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state.Open && !now.Before(w.state.Until) {
		// Its end passed before Observe saw it.
		if err := w.closeLocked(now, ClosedByTimeout); err != nil {
			w.log.Warn("portal window: "+err.Error(), "device", w.state.Device)
		}
	}
	if w.state.Open && w.state.Device != d {
		return w.state, fmt.Errorf("%w: %v until %s; close it first (fobgw portal close)", ErrBusy, w.state.Device, w.state.Until.Format(time.TimeOnly))
	}
	until := now.Add(length)
	if w.marker != nil {
		if err := w.marker.Mark(d, until); err != nil {
			return w.state, fmt.Errorf("open a window for %v: %w", d, err)
		}
	}
	if w.state.Open {
		w.state.Until, w.state.By = until, by
		w.log.Info("portal window extended", "device", d, "until", until.Format(time.RFC3339), "by", by)
		return w.state, nil
	}
	w.state = WindowState{Open: true, Device: d, By: by, Opened: now, Until: until}
	w.handshake = handshake
	w.counts.Opened++
	w.log.Info("portal window opened: this device alone goes out directly, without the tunnel, until it closes",
		"device", d, "until", until.Format(time.RFC3339), "by", by)
	return w.state, nil
}

// Close closes the window as the owner asks. It reports whether one was
// open; an error is the Marker's (the window is closed all the same).
func (w *Window) Close(now time.Time) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.state.Open {
		return false, nil
	}
	return true, w.closeLocked(now, ClosedByOwner)
}

// Observe closes the window at its end, or at the first handshake after it
// opened: handshake is the latest handshake as observed now, and any other
// value than the one at Open (a WireGuard handshake time only moves at a
// new handshake) means one went through, whatever the clock did meanwhile.
// It returns the reason it closed the window for, 0 when it did not; an
// error is the Marker's (the window is closed all the same).
func (w *Window) Observe(now time.Time, handshake time.Time) (CloseReason, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.state.Open {
		return 0, nil
	}
	var why CloseReason
	switch {
	case !handshake.IsZero() && !handshake.Equal(w.handshake):
		why = ClosedByHandshake
	case !now.Before(w.state.Until):
		why = ClosedByTimeout
	default:
		return 0, nil
	}
	return why, w.closeLocked(now, why)
}

func (w *Window) closeLocked(now time.Time, why CloseReason) error {
	d := w.state.Device
	w.state.Open, w.state.Closed, w.state.Reason = false, now, why
	switch why {
	case ClosedByOwner:
		w.counts.ClosedByOwner++
	case ClosedByHandshake:
		w.counts.ClosedByHandshake++
	case ClosedByTimeout:
		w.counts.ClosedByTimeout++
	}
	w.log.Info("portal window closed: the device goes home again", "device", d, "reason", why,
		"open_for", now.Sub(w.state.Opened).Round(time.Second))
	if w.marker == nil {
		return nil
	}
	if err := w.marker.Unmark(d); err != nil {
		return fmt.Errorf("close the window for %v: %w", d, err)
	}
	return nil
}

// State is the window now: open, or the last one closed.
func (w *Window) State() WindowState {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state
}

// Active is what should be marked now: the device and the end of its
// window, ok false when none is open. A window past its end is not active
// even before Observe closes it.
func (w *Window) Active(now time.Time) (d Device, until time.Time, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.state.Open || !now.Before(w.state.Until) {
		return Device{}, time.Time{}, false
	}
	return w.state.Device, w.state.Until, true
}

// Counts returns the window counters.
func (w *Window) Counts() WindowCounts {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.counts
}
