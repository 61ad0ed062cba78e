package portal

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// fakeMarker records what the window asks of the system.
type fakeMarker struct {
	marked  map[Device]time.Time
	calls   []string
	failing bool
}

func newFakeMarker() *fakeMarker { return &fakeMarker{marked: map[Device]time.Time{}} }

func (m *fakeMarker) Mark(d Device, until time.Time) error {
	m.calls = append(m.calls, "mark "+d.String())
	if m.failing {
		return errors.New("nft: no such table")
	}
	m.marked[d] = until
	return nil
}

func (m *fakeMarker) Unmark(d Device) error {
	m.calls = append(m.calls, "unmark "+d.String())
	if m.failing {
		return errors.New("nft: no such table")
	}
	delete(m.marked, d)
	return nil
}

var (
	t0     = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	laptop = DeviceAddr(netip.MustParseAddr("192.168.86.50"))
	phone  = DeviceMAC([6]byte{2, 0x11, 0x22, 0x33, 0x44, 0x55})
	hsOld  = t0.Add(-2 * time.Hour) // the last handshake before the portal
)

func newTestWindow(t *testing.T) (*Window, *fakeMarker, *bytes.Buffer) {
	t.Helper()
	m := newFakeMarker()
	var logs bytes.Buffer
	return NewWindow(m, slog.New(slog.NewTextHandler(&logs, nil))), m, &logs
}

func TestWindowClosedByHandshake(t *testing.T) {
	w, m, logs := newTestWindow(t)
	st, err := w.Open(t0, laptop, DefaultWindow, "command", hsOld)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Open || st.Device != laptop || !st.Until.Equal(t0.Add(10*time.Minute)) || st.By != "command" {
		t.Fatalf("Open = %+v", st)
	}
	if until, ok := m.marked[laptop]; !ok || !until.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("marked %v, want the laptop until 12:10", m.marked)
	}
	if d, until, ok := w.Active(t0.Add(time.Minute)); !ok || d != laptop || !until.Equal(st.Until) {
		t.Fatalf("Active = %v %v %v", d, until, ok)
	}
	// Nothing new yet: the same handshake as at open, or none seen.
	for _, hs := range []time.Time{hsOld, {}} {
		if why, err := w.Observe(t0.Add(2*time.Minute), hs); why != 0 || err != nil {
			t.Fatalf("Observe(%v) closed it: %v %v", hs, why, err)
		}
	}
	// The first handshake after the login closes it, even with a clock that
	// jumped back meanwhile (the handshake time is merely another one).
	why, err := w.Observe(t0.Add(3*time.Minute), hsOld.Add(time.Minute))
	if why != ClosedByHandshake || err != nil {
		t.Fatalf("Observe after a handshake = %v, %v; want closed by handshake", why, err)
	}
	if _, still := m.marked[laptop]; still {
		t.Fatal("the laptop is still marked")
	}
	st = w.State()
	if st.Open || st.Reason != ClosedByHandshake || !st.Closed.Equal(t0.Add(3*time.Minute)) || st.Device != laptop {
		t.Fatalf("State = %+v", st)
	}
	if _, _, ok := w.Active(t0.Add(3 * time.Minute)); ok {
		t.Fatal("Active after close")
	}
	if c := w.Counts(); c != (WindowCounts{Opened: 1, ClosedByHandshake: 1}) {
		t.Fatalf("Counts = %+v", c)
	}
	if !strings.Contains(logs.String(), "reason=handshake") || !strings.Contains(logs.String(), "open_for=3m0s") {
		t.Errorf("log does not say why and how long:\n%s", logs)
	}
	// Observing a closed window does nothing.
	if why, _ := w.Observe(t0.Add(time.Hour), t0.Add(time.Hour)); why != 0 {
		t.Fatalf("Observe of a closed window: %v", why)
	}
}

func TestWindowNoHandshakeYet(t *testing.T) {
	// A gateway that never had a handshake: the first one closes it.
	w, _, _ := newTestWindow(t)
	if _, err := w.Open(t0, phone, 5*time.Minute, "page", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if why, _ := w.Observe(t0.Add(time.Second), time.Time{}); why != 0 {
		t.Fatalf("closed without a handshake: %v", why)
	}
	if why, _ := w.Observe(t0.Add(time.Minute), t0.Add(59*time.Second)); why != ClosedByHandshake {
		t.Fatalf("Observe = %v, want closed by handshake", why)
	}
}

func TestWindowClosedByTimeout(t *testing.T) {
	w, m, _ := newTestWindow(t)
	if _, err := w.Open(t0, laptop, 30*time.Minute, "command", hsOld); err != nil {
		t.Fatal(err)
	}
	if why, _ := w.Observe(t0.Add(30*time.Minute-time.Nanosecond), hsOld); why != 0 {
		t.Fatalf("closed before its end: %v", why)
	}
	if _, _, ok := w.Active(t0.Add(30 * time.Minute)); ok {
		t.Fatal("active at its end")
	}
	if why, _ := w.Observe(t0.Add(30*time.Minute), hsOld); why != ClosedByTimeout {
		t.Fatalf("Observe at the end = %v, want timeout", why)
	}
	if len(m.marked) != 0 || w.Counts() != (WindowCounts{Opened: 1, ClosedByTimeout: 1}) {
		t.Fatalf("marked %v, counts %+v", m.marked, w.Counts())
	}
}

func TestWindowClosedByOwner(t *testing.T) {
	w, m, _ := newTestWindow(t)
	if closed, err := w.Close(t0); closed || err != nil {
		t.Fatalf("Close of a closed window = %v, %v", closed, err)
	}
	if _, err := w.Open(t0, laptop, time.Minute, "command", hsOld); err != nil {
		t.Fatal(err)
	}
	if closed, err := w.Close(t0.Add(time.Second)); !closed || err != nil {
		t.Fatalf("Close = %v, %v", closed, err)
	}
	if len(m.marked) != 0 || w.State().Reason != ClosedByOwner || w.Counts() != (WindowCounts{Opened: 1, ClosedByOwner: 1}) {
		t.Fatalf("marked %v, state %+v, counts %+v", m.marked, w.State(), w.Counts())
	}
}

func TestWindowOneDevice(t *testing.T) {
	w, m, _ := newTestWindow(t)
	if _, err := w.Open(t0, laptop, 10*time.Minute, "command", hsOld); err != nil {
		t.Fatal(err)
	}
	// Another device: refused, nothing marked for it.
	st, err := w.Open(t0.Add(time.Minute), phone, 10*time.Minute, "page", hsOld)
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "192.168.86.50 until 12:10:00") || !strings.Contains(err.Error(), "fobgw portal close") {
		t.Fatalf("Open for another device: %v", err)
	}
	if st.Device != laptop {
		t.Fatalf("the busy window's state names %v", st.Device)
	}
	if _, ok := m.marked[phone]; ok {
		t.Fatal("the phone is marked")
	}
	// The same device again: its end moves, counted once.
	st, err = w.Open(t0.Add(5*time.Minute), laptop, 10*time.Minute, "page", t0.Add(5*time.Minute))
	if err != nil || !st.Until.Equal(t0.Add(15*time.Minute)) || !st.Opened.Equal(t0) {
		t.Fatalf("Open again = %+v, %v; want the end moved to 12:15", st, err)
	}
	if !m.marked[laptop].Equal(t0.Add(15 * time.Minute)) {
		t.Fatalf("marked until %v, want 12:15", m.marked[laptop])
	}
	// ... and the handshake that counts is still one after the first open.
	if why, _ := w.Observe(t0.Add(6*time.Minute), hsOld); why != 0 {
		t.Fatalf("closed by the handshake seen at the first open: %v", why)
	}
	if w.Counts().Opened != 1 {
		t.Fatalf("Counts = %+v, want one opened", w.Counts())
	}
	// A window past its end that nobody observed yet does not block another
	// device: it is closed by its timeout first.
	if _, err := w.Open(t0.Add(20*time.Minute), phone, time.Minute, "page", hsOld); err != nil {
		t.Fatalf("Open after the first window's end: %v", err)
	}
	if c := w.Counts(); c != (WindowCounts{Opened: 2, ClosedByTimeout: 1}) {
		t.Fatalf("Counts = %+v", c)
	}
	if _, ok := m.marked[laptop]; ok || len(m.marked) != 1 {
		t.Fatalf("marked %v, want the phone alone", m.marked)
	}
}

func TestWindowLength(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		says string
	}{
		{0, "not positive"},
		{-time.Minute, "not positive"},
		{30*time.Minute + time.Second, "longer than 30m0s"},
		{24 * time.Hour, "at most 30m0s"},
	} {
		err := CheckLength(tc.d)
		var ve *ValueError
		if !errors.As(err, &ve) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("CheckLength(%v) = %v, want a *ValueError saying %q", tc.d, err, tc.says)
		}
		w, m, _ := newTestWindow(t)
		if _, err := w.Open(t0, laptop, tc.d, "command", hsOld); err == nil || len(m.calls) != 0 || w.State().Open {
			t.Errorf("Open for %v: %v, marker calls %v", tc.d, err, m.calls)
		}
	}
	for _, d := range []time.Duration{time.Second, DefaultWindow, MaxWindow} {
		if err := CheckLength(d); err != nil {
			t.Errorf("CheckLength(%v) = %v", d, err)
		}
	}
	w, _, _ := newTestWindow(t)
	if _, err := w.Open(t0, Device{}, time.Minute, "command", hsOld); err == nil {
		t.Error("Open for no device succeeded")
	}
}

func TestWindowMarkerFails(t *testing.T) {
	w, m, _ := newTestWindow(t)
	m.failing = true
	if _, err := w.Open(t0, laptop, time.Minute, "command", hsOld); err == nil || !strings.Contains(err.Error(), "no such table") {
		t.Fatalf("Open with a failing marker: %v", err)
	}
	if w.State().Open || w.Counts().Opened != 0 {
		t.Fatalf("open after a failed mark: %+v %+v", w.State(), w.Counts())
	}
	// A failed unmark closes the window all the same and says so.
	m.failing = false
	if _, err := w.Open(t0, laptop, time.Minute, "command", hsOld); err != nil {
		t.Fatal(err)
	}
	m.failing = true
	if closed, err := w.Close(t0.Add(time.Second)); !closed || err == nil {
		t.Fatalf("Close with a failing marker = %v, %v", closed, err)
	}
	if w.State().Open {
		t.Fatal("still open")
	}
}

func TestWindowStateJSON(t *testing.T) {
	for _, st := range []WindowState{
		{Open: true, Device: laptop, By: "command", Opened: t0, Until: t0.Add(DefaultWindow)},
		{Device: phone, By: "page", Opened: t0, Until: t0.Add(MaxWindow), Closed: t0.Add(time.Minute), Reason: ClosedByHandshake},
		{},
	} {
		b, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		var back WindowState
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if back.Open != st.Open || back.Device != st.Device || back.By != st.By || !back.Opened.Equal(st.Opened) ||
			!back.Until.Equal(st.Until) || !back.Closed.Equal(st.Closed) || back.Reason != st.Reason {
			t.Fatalf("round trip of %s: %+v, want %+v", b, back, st)
		}
	}
	var r CloseReason
	if err := r.UnmarshalText([]byte("later")); err == nil {
		t.Fatal("an unknown reason was read")
	}
}
