package health

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

type lanWorld struct {
	l    *LANPath
	pr   *fakeProber
	logs bytes.Buffer
	now  time.Time
}

func newLANWorld(masq bool) *lanWorld {
	w := &lanWorld{pr: &fakeProber{}, now: t0}
	w.l = newLANPath(w.pr, netip.MustParseAddr("192.168.86.1"), "192.168.86.0/24", masq, slog.New(slog.NewTextHandler(&w.logs, nil)))
	return w
}

// step is one probe after an answered tunnel probe.
func (w *lanWorld) step() {
	w.l.step(context.Background(), w.now)
	w.now = w.now.Add(ProbeInterval)
}

// TestLANPathBroken: the tunnel probe is answered, the LAN's is not: status
// says so at the first miss and names the fix, the log warns once, and a
// line says when it works again.
func TestLANPathBroken(t *testing.T) {
	w := newLANWorld(false)
	w.l.idle(w.now) // the tunnel does not answer yet: nothing sent
	if st := w.l.State(); st.Probes != 0 || st.OK || !strings.Contains(st.Reason, "the tunnel does not answer") || w.pr.calls != 0 {
		t.Fatalf("before the tunnel answers: %+v, %d probes sent", st, w.pr.calls)
	}
	w.l.poke(w.now)                    // the tunnel answers
	w.pr.err = errors.New("no answer") // home drops 192.168.86.1
	w.step()
	st := w.l.State()
	if st.OK || st.Probes != 1 || !strings.Contains(st.Reason, "must allow 192.168.86.0/24") || !strings.Contains(st.Reason, "Masquerade = on") {
		t.Errorf("after one miss: %+v", st)
	}
	for range 10 {
		w.step()
	}
	if n := strings.Count(w.logs.String(), "level=WARN"); n != 1 || !strings.Contains(w.logs.String(), "Masquerade = on") {
		t.Errorf("%d warnings, want 1 naming the fix:\n%s", n, &w.logs)
	}
	w.pr.err = nil // the home peer now allows the LAN
	w.step()
	if st := w.l.State(); !st.OK || st.Reason != "" || st.LastOK != w.now.Add(-ProbeInterval) {
		t.Errorf("after an answer: %+v", st)
	}
	if !strings.Contains(w.logs.String(), "the LAN path answers again") {
		t.Errorf("no recovery line:\n%s", &w.logs)
	}
}

// TestLANPathRun: run probes once per answered tunnel probe, not on its
// own, and the healer's events never block it; once the tunnel stops
// answering, status says so within two intervals and a timeout. Fake time
// (synctest): the intervals pass without waiting.
func TestLANPathRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newLANWorld(false)
		probed := make(chan struct{}, 10)
		w.l.probe = probeFunc(func(ctx context.Context) error { probed <- struct{}{}; return nil })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { w.l.Run(ctx); close(done) }()
		for range 3 {
			w.l.Observe(ProbeMissed) // no probe for a miss
			w.l.Observe(EndpointSet)
			w.l.Observe(ProbeAnswered)
			synctest.Wait()
			select {
			case <-probed:
			default:
				t.Fatal("no probe after an answered tunnel probe")
			}
			if len(probed) != 0 {
				t.Fatal("more than one probe for one answered tunnel probe")
			}
		}
		if st := w.l.State(); st.Probes != 3 || !st.OK {
			t.Errorf("state %+v, want 3 answered probes", st)
		}
		time.Sleep(2*ProbeInterval + ProbeTimeout + ProbeInterval) // fake time: the tunnel is silent
		synctest.Wait()
		if st := w.l.State(); st.OK || !strings.Contains(st.Reason, "the tunnel does not answer") {
			t.Errorf("after the tunnel went silent: %+v", st)
		}
		cancel()
		<-done
		for range 5 {
			w.l.Observe(ProbeAnswered) // nobody reads: must not block
		}
	})
}

// TestLANPathOneLoss: one lost probe sets status but is no warning.
func TestLANPathOneLoss(t *testing.T) {
	w := newLANWorld(false)
	w.pr.err = errors.New("no answer")
	w.step()
	w.pr.err = nil
	w.step()
	if w.logs.Len() != 0 {
		t.Errorf("one lost probe logged:\n%s", &w.logs)
	}
}

// TestLANPathMasqueradeOn: with Masquerade on, a broken LAN path points at
// the NAT table, not at Masquerade.
func TestLANPathMasqueradeOn(t *testing.T) {
	w := newLANWorld(true)
	w.pr.err = errors.New("no answer")
	w.step()
	if r := w.l.State().Reason; !strings.Contains(r, "though Masquerade is on") || strings.Contains(r, "set Masquerade = on") {
		t.Errorf("reason %q", r)
	}
}

// TestHealerEvents: the healer tells its subscribers of every endpoint it
// sets and of every probe, answered or not, in order, so the LAN-path probe
// always follows a fresh tunnel answer.
func TestHealerEvents(t *testing.T) {
	var got []Event
	w := newHealerWorldWith(t, Config{Subscribers: []func(Event){func(e Event) { got = append(got, e) }}}, "home.example.net:13231", addrA)
	w.step() // boot: the endpoint, no probe
	w.step()
	w.step()
	w.pr.err = errors.New("timeout")
	w.step()
	w.step()
	want := []Event{EndpointSet, ProbeAnswered, ProbeAnswered, ProbeMissed, ProbeMissed}
	if !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}
