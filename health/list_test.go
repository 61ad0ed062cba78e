package health

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/fobgw/fobgw/config"
)

// newListWorld is a healer world for an Endpoint list; names resolve as
// byHost says (a name not in it does not resolve). The log goes to the
// returned buffer.
func newListWorld(tb testing.TB, list string, byHost map[string][]netip.Addr) (*healerWorld, *bytes.Buffer) {
	tb.Helper()
	es, err := config.ParseEndpoints(list)
	if err != nil {
		tb.Fatal(err)
	}
	var logs bytes.Buffer
	w := &healerWorld{res: &fakeResolver{byHost: byHost}, pr: &fakeProber{}, peer: &fakePeer{}, now: t0}
	w.h = newHealer(defaultParams(), Config{Endpoints: es, Resolver: w.res, Prober: w.pr, Peer: w.peer, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	return w, &logs
}

// stepUntil steps until cond holds, failing after limit of the world's time.
func (w *healerWorld) stepUntil(tb testing.TB, what string, limit time.Duration, cond func() bool) time.Duration {
	tb.Helper()
	start := w.now
	for !cond() {
		if w.now.Sub(start) > limit {
			tb.Fatalf("%s: not within %v; endpoints set %v", what, limit, w.peer.set)
		}
		w.step()
	}
	return w.now.Sub(start)
}

var addrD = netip.MustParseAddr("203.0.113.9")

// TestHealerListNextEntry: the first entry's port is blocked. Every address
// of the first entry is tried (3 misses each), then the second entry, where
// the healer stays once the tunnel answers; the switch is counted and
// status names the entry and why.
func TestHealerListNextEntry(t *testing.T) {
	w, logs := newListWorld(t, "home.example.net:13231, home.example.net:443, backup.example.org:51820",
		map[string][]netip.Addr{"home.example.net": {addrA, addrB}, "backup.example.org": {addrD}})
	w.step() // boot: A:13231
	if st := w.h.state(); st.EndpointEntry != "home.example.net:13231" || st.EndpointEntryReason != "first entry" {
		t.Fatalf("at boot: entry %q (%q)", st.EndpointEntry, st.EndpointEntryReason)
	}
	w.pr.err = errors.New("timeout") // UDP 13231 dropped by the ISP
	took := w.stepUntil(t, "the second entry", time.Minute, func() bool { return w.peer.last().Port() == 443 })
	want := []netip.AddrPort{ap(addrA), ap(addrB), netip.AddrPortFrom(addrA, 443)}
	if len(w.peer.set) != len(want) || w.peer.set[0] != want[0] || w.peer.set[1] != want[1] || w.peer.set[2] != want[2] {
		t.Errorf("endpoints set %v, want %v (both addresses of the first entry, then the second)", w.peer.set, want)
	}
	// Two addresses of 3 misses each, at 3 s: within the 30 s bar with
	// time for the handshake.
	if took > 2*MaxMisses*ProbeInterval+ProbeInterval {
		t.Errorf("second entry after %v", took)
	}
	w.pr.err = nil // 443 passes
	for range 20 {
		w.step()
	}
	st := w.h.state()
	if w.peer.last().Port() != 443 || st.EndpointEntry != "home.example.net:443" || st.EndpointEntrySwitches != 1 {
		t.Errorf("after success: endpoint %v, entry %q, switches %d; want it to stay on :443 after one switch", w.peer.last(), st.EndpointEntry, st.EndpointEntrySwitches)
	}
	if !strings.Contains(st.EndpointEntryReason, "home.example.net:13231 did not answer") || !strings.Contains(st.EndpointEntryReason, "2 address(es) tried") {
		t.Errorf("reason %q does not say why", st.EndpointEntryReason)
	}
	if n := strings.Count(logs.String(), "endpoint entry switched"); n != 1 {
		t.Errorf("%d switch lines in the log, want 1:\n%s", n, logs)
	}
}

// TestHealerListAround: no entry answers; the healer goes around the list
// and skips an entry whose name does not resolve.
func TestHealerListAround(t *testing.T) {
	w, _ := newListWorld(t, "home.example.net:13231, gone.example.net:443, 203.0.113.9:51820",
		map[string][]netip.Addr{"home.example.net": {addrA}})
	w.step()
	w.pr.err = errors.New("timeout")
	w.stepUntil(t, "the literal third entry", time.Minute, func() bool { return w.peer.last() == netip.AddrPortFrom(addrD, 51820) })
	if st := w.h.state(); st.EndpointName != "" || st.EndpointRecords != nil || st.EndpointEntry != "203.0.113.9:51820" {
		t.Errorf("on a literal entry: name %q, records %v, entry %q", st.EndpointName, st.EndpointRecords, st.EndpointEntry)
	}
	w.stepUntil(t, "back to the first entry", time.Minute, func() bool { return w.peer.last() == ap(addrA) })
	if st := w.h.state(); st.EndpointEntrySwitches != 2 || st.EndpointName != "home.example.net" {
		t.Errorf("switches %d, name %q; want 2 and home.example.net", st.EndpointEntrySwitches, st.EndpointName)
	}
}

// TestHealerListFailback: on the second entry, the first is tried again
// every FailbackInterval: while it does not answer, the working entry is
// set again after TrialMisses probes; once it answers, the healer stays.
func TestHealerListFailback(t *testing.T) {
	w, _ := newListWorld(t, "home.example.net:13231, home.example.net:443",
		map[string][]netip.Addr{"home.example.net": {addrA}})
	w.step()
	w.pr.err = errors.New("timeout")
	w.stepUntil(t, "the second entry", time.Minute, func() bool { return w.peer.last().Port() == 443 })
	left := w.now
	w.pr.err = nil
	w.step()

	// The healer has the working path: probes answered only on 443.
	w.pr.err = nil
	blocked := func() {
		if w.peer.last().Port() == 13231 {
			w.pr.err = errors.New("timeout")
		} else {
			w.pr.err = nil
		}
	}
	trialAt := time.Time{}
	for w.now.Sub(left) < FailbackInterval+time.Minute {
		blocked()
		w.step()
		if w.peer.last().Port() == 13231 && trialAt.IsZero() {
			trialAt = w.now
		}
	}
	if trialAt.IsZero() || trialAt.Sub(left) < FailbackInterval || trialAt.Sub(left) > FailbackInterval+2*ProbeInterval {
		t.Fatalf("first entry tried at %v after leaving it, want after %v", trialAt.Sub(left), FailbackInterval)
	}
	st := w.h.state()
	if w.peer.last().Port() != 443 || st.EndpointEntry != "home.example.net:443" || st.EndpointEntryTrials != 1 || st.EndpointEntrySwitches != 1 {
		t.Errorf("after a failed trial: endpoint %v, entry %q, trials %d, switches %d; want back on 443, 1 trial, 1 switch",
			w.peer.last(), st.EndpointEntry, st.EndpointEntryTrials, st.EndpointEntrySwitches)
	}
	// The failed trial cost TrialMisses probes.
	if n := len(w.peer.set); w.peer.set[n-2].Port() != 13231 {
		t.Errorf("endpoints %v: the trial is not the one before last", w.peer.set)
	}

	// The first entry is unblocked: the next trial keeps it.
	w.pr.err = nil
	w.stepUntil(t, "the first entry kept", FailbackInterval+time.Minute, func() bool {
		return w.h.trial == nil && w.peer.last().Port() == 13231
	})
	for range 10 {
		w.step()
	}
	st = w.h.state()
	if w.peer.last().Port() != 13231 || st.EndpointEntry != "home.example.net:13231" || st.EndpointEntrySwitches != 2 ||
		st.EndpointEntryReason != "the first entry answers again" {
		t.Errorf("after a good trial: endpoint %v, entry %q (%q), switches %d", w.peer.last(), st.EndpointEntry, st.EndpointEntryReason, st.EndpointEntrySwitches)
	}
	if !w.h.nextFailback.IsZero() {
		t.Errorf("on the first entry, yet a failback is planned at %v", w.h.nextFailback)
	}
}

// TestHealerListTrialRoamed: during a trial the peer roams back to the
// working address (home sent from it); a probe answered there is not the
// first entry's answer.
func TestHealerListTrialRoamed(t *testing.T) {
	w, _ := newListWorld(t, "home.example.net:13231, home.example.net:443",
		map[string][]netip.Addr{"home.example.net": {addrA}})
	w.step()
	w.pr.err = errors.New("timeout")
	w.stepUntil(t, "the second entry", time.Minute, func() bool { return w.peer.last().Port() == 443 })
	w.pr.err = nil
	w.stepUntil(t, "a trial", FailbackInterval+time.Minute, func() bool { return w.h.trial != nil })
	w.peer.roamed = netip.AddrPortFrom(addrA, 443)
	for range TrialMisses {
		w.step()
	}
	if w.h.trial != nil || w.peer.last().Port() != 443 || w.h.state().EndpointEntry != "home.example.net:443" {
		t.Errorf("trial %v, endpoint %v, entry %q; want the trial over and back on 443", w.h.trial, w.peer.last(), w.h.state().EndpointEntry)
	}
}
