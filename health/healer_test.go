package health

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fobgw/fobgw/config"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

type fakeResolver struct {
	addrs  []netip.Addr
	err    error
	calls  int
	byHost map[string][]netip.Addr // when set, the answers by name (none: NXDOMAIN)
}

func (r *fakeResolver) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	r.calls++
	if r.byHost != nil && r.err == nil {
		a, ok := r.byHost[host]
		if !ok {
			return nil, errors.New("NXDOMAIN " + host)
		}
		return slices.Clone(a), nil
	}
	return slices.Clone(r.addrs), r.err
}

type fakeProber struct {
	err   error
	calls int
}

func (p *fakeProber) Probe(ctx context.Context) error {
	p.calls++
	if _, ok := ctx.Deadline(); !ok {
		return errors.New("probe without a deadline")
	}
	return p.err
}

type fakePeer struct {
	set        []netip.AddrPort
	handshake  time.Time
	rx         uint64
	roamed     netip.AddrPort   // when valid, where roaming took the endpoint since the last set
	handshakes []netip.AddrPort // where each StartHandshake went
}

func (p *fakePeer) StartHandshake() error {
	ep, _ := p.Endpoint()
	p.handshakes = append(p.handshakes, ep)
	return nil
}

func (p *fakePeer) Endpoint() (netip.AddrPort, error) {
	if p.roamed.IsValid() {
		return p.roamed, nil
	}
	return p.last(), nil
}

func (p *fakePeer) RxBytes() (uint64, error) { return p.rx, nil }

func (p *fakePeer) SetEndpoint(ap netip.AddrPort) error {
	p.set, p.roamed = append(p.set, ap), netip.AddrPort{}
	return nil
}
func (p *fakePeer) LastHandshake() (time.Time, error) { return p.handshake, nil }

func (p *fakePeer) last() netip.AddrPort {
	if len(p.set) == 0 {
		return netip.AddrPort{}
	}
	return p.set[len(p.set)-1]
}

var (
	addrA = netip.MustParseAddr("198.51.100.2")
	addrB = netip.MustParseAddr("198.51.100.3")
	addrC = netip.MustParseAddr("2001:db8::2")
	t0    = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
)

type healerWorld struct {
	h    *Healer
	res  *fakeResolver
	pr   *fakeProber
	peer *fakePeer
	now  time.Time
}

func newHealerWorld(tb testing.TB, endpoint string, addrs ...netip.Addr) *healerWorld {
	tb.Helper()
	return newHealerWorldWith(tb, Config{Log: discardLogger()}, endpoint, addrs...)
}

// newHealerWorldWith is newHealerWorld with c's clock, log and subscribers;
// the world gives the endpoint, the resolver, the prober and the peer.
func newHealerWorldWith(tb testing.TB, c Config, endpoint string, addrs ...netip.Addr) *healerWorld {
	tb.Helper()
	es, err := config.ParseEndpoints(endpoint)
	if err != nil {
		tb.Fatal(err)
	}
	w := &healerWorld{res: &fakeResolver{addrs: addrs}, pr: &fakeProber{}, peer: &fakePeer{}, now: t0}
	c.Endpoints, c.Resolver, c.Prober, c.Peer = es, w.res, w.pr, w.peer
	w.h = newHealer(defaultParams(), c)
	return w
}

// step runs one step at the world's time and advances it by the returned delay.
func (w *healerWorld) step() time.Duration {
	d := w.h.step(context.Background(), w.now)
	w.now = w.now.Add(d)
	return d
}

func ap(a netip.Addr) netip.AddrPort { return netip.AddrPortFrom(a, 13231) }

func TestHealerBootBackoff(t *testing.T) {
	w := newHealerWorld(t, "home.example.net:13231")
	w.res.err = errors.New("SERVFAIL")
	var got []time.Duration
	for range 8 {
		got = append(got, w.step())
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30, 30}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(got, want) {
		t.Errorf("back-off %v, want %v", got, want)
	}
	if len(w.peer.set) != 0 || w.pr.calls != 0 {
		t.Fatalf("endpoint set %v or probes %d before resolution", w.peer.set, w.pr.calls)
	}
	w.res.err, w.res.addrs = nil, []netip.Addr{addrA, addrB}
	if d := w.step(); d != ProbeInterval {
		t.Errorf("after resolution the next step is in %v, want %v", d, ProbeInterval)
	}
	if w.peer.last() != ap(addrA) {
		t.Errorf("endpoint %v, want %v", w.peer.last(), ap(addrA))
	}
	st := w.h.state()
	if st.ResolveFailures != 8 || st.EndpointName != "home.example.net" || !slices.Equal(st.EndpointRecords, []netip.Addr{addrA, addrB}) {
		t.Errorf("state %+v", st)
	}
	// The back-off starts again from the minimum after a success.
	if w.h.backoff != ResolveBackoffMin {
		t.Errorf("back-off not reset: %v", w.h.backoff)
	}
}

func TestHealerMissesRotateRecords(t *testing.T) {
	w := newHealerWorld(t, "home.example.net:13231", addrA, addrB, addrC)
	w.step() // boot: A
	w.pr.err = errors.New("timeout")
	var seq []netip.Addr
	for range 9 {
		calls := w.res.calls
		w.step()
		if w.res.calls != calls {
			seq = append(seq, w.peer.last().Addr())
		}
	}
	// Every third miss re-resolves and moves to the next record, around.
	if want := []netip.Addr{addrB, addrC, addrA}; !slices.Equal(seq, want) {
		t.Errorf("rotation %v, want %v", seq, want)
	}
	st := w.h.state()
	if st.EndpointChanges != 3 || st.ProbeMissesTotal != 9 || st.Reresolutions != 3 {
		t.Errorf("state %+v", st)
	}
	// An answered probe resets the misses.
	w.pr.err = nil
	w.step()
	if st := w.h.state(); st.ProbeMisses != 0 || st.LastProbeOK.IsZero() {
		t.Errorf("after an answer: %+v", st)
	}
}

func TestHealerPrefersChangedAddress(t *testing.T) {
	w := newHealerWorld(t, "home.example.net:13231", addrA, addrB)
	w.step()
	w.pr.err = errors.New("timeout")
	w.res.addrs = []netip.Addr{addrA, addrB, addrC} // the record gained C
	w.step()
	w.step()
	w.step()
	if w.peer.last() != ap(addrC) {
		t.Errorf("endpoint %v, want the new address %v", w.peer.last(), addrC)
	}
}

// TestHealerRecordFollowsLate: the home address changes, its record
// follows a few seconds later. The healer keeps asking at every miss once
// the misses are reached, and switches as soon as the record changes.
func TestHealerRecordFollowsLate(t *testing.T) {
	w := newHealerWorld(t, "home.example.net:13231", addrA)
	w.step()
	w.pr.err = errors.New("timeout") // home moved at w.now
	moved := w.now
	for range 5 {
		w.step()
	}
	if len(w.peer.set) != 1 {
		t.Fatalf("endpoint set again while the record did not change: %v", w.peer.set)
	}
	if w.res.calls != 1+3 {
		t.Errorf("resolver asked %d times, want 4 (boot, then at misses 3, 4, 5)", w.res.calls)
	}
	w.res.addrs = []netip.Addr{addrB}
	w.step()
	if w.peer.last() != ap(addrB) {
		t.Fatalf("endpoint %v, want %v", w.peer.last(), ap(addrB))
	}
	if took := w.now.Sub(moved); took > 30*time.Second {
		t.Errorf("switch took %v", took)
	}
}

// TestHealerBar: the home address changes and its record follows at
// once; the new endpoint is set well within the 30 s of the bar, leaving
// time for the handshake (REKEY_TIMEOUT 5 s).
func TestHealerBar(t *testing.T) {
	w := newHealerWorld(t, "home.example.net:13231", addrA)
	w.step()
	for range 10 {
		w.step() // healthy
	}
	moved := w.now
	w.pr.err = errors.New("timeout")
	w.res.addrs = []netip.Addr{addrB}
	for w.peer.last() != ap(addrB) {
		if w.now.Sub(moved) > time.Minute {
			t.Fatal("endpoint never moved")
		}
		w.step()
	}
	if took := w.now.Sub(moved); took > 20*time.Second {
		t.Errorf("endpoint moved after %v; the bar (30 s) needs it by about 20 s", took)
	}
}

func TestHealerStaleHandshake(t *testing.T) {
	w := newHealerWorld(t, "home.example.net:13231", addrA, addrB)
	w.step()
	w.peer.handshake = w.now
	// Probes answer; the handshake ages.
	for w.now.Sub(w.peer.handshake) <= StaleHandshake {
		w.step()
		if len(w.peer.set) != 1 {
			t.Fatalf("endpoint changed at handshake age %v", w.now.Sub(w.peer.handshake))
		}
	}
	w.step()
	if w.peer.last() != ap(addrB) {
		t.Errorf("stale handshake did not move the endpoint: %v", w.peer.set)
	}
	// Within the grace after a change, an old handshake does not move it again.
	n := len(w.peer.set)
	w.step()
	if len(w.peer.set) != n {
		t.Errorf("endpoint moved again within the grace")
	}
}

func TestHealerNeverHandshaked(t *testing.T) {
	w := newHealerWorld(t, "home.example.net:13231", addrA, addrB)
	w.step()
	start := w.now
	for len(w.peer.set) == 1 {
		if w.now.Sub(start) > 2*StaleHandshake {
			t.Fatal("no handshake ever, endpoint never moved")
		}
		w.step()
	}
	if took := w.now.Sub(start); took < StaleHandshake {
		t.Errorf("moved after %v, before the handshake could be stale", took)
	}
}

func TestHealerLiteral(t *testing.T) {
	w := newHealerWorld(t, "198.51.100.2:13231")
	w.step()
	if w.peer.last() != ap(addrA) {
		t.Fatalf("literal endpoint not set: %v", w.peer.set)
	}
	w.pr.err = errors.New("timeout")
	for range 6 {
		w.step()
	}
	if w.res.calls != 0 {
		t.Errorf("a literal endpoint was resolved %d times", w.res.calls)
	}
	if st := w.h.state(); st.EndpointName != "" || st.ProbeMissesTotal != 6 {
		t.Errorf("state %+v", st)
	}
}

func TestHealerResolveFailureKeepsEndpoint(t *testing.T) {
	w := newHealerWorld(t, "home.example.net:13231", addrA)
	w.step()
	w.pr.err = errors.New("timeout")
	w.res.err = errors.New("resolver down")
	for range 10 {
		w.step()
	}
	if len(w.peer.set) != 1 {
		t.Errorf("endpoint changed on a failed resolution: %v", w.peer.set)
	}
	// Failed resolutions back off (1 s, 2 s, 4 s ... between attempts), so
	// there are fewer attempts than misses past the third.
	if w.res.calls >= 1+8 {
		t.Errorf("resolver asked %d times in 10 steps; want back-off", w.res.calls)
	}
}

func TestPickNext(t *testing.T) {
	tests := []struct {
		name        string
		prev, fresh []netip.Addr
		cur, want   netip.Addr
	}{
		{"rotate", []netip.Addr{addrA, addrB}, []netip.Addr{addrA, addrB}, addrA, addrB},
		{"wrap", []netip.Addr{addrA, addrB}, []netip.Addr{addrA, addrB}, addrB, addrA},
		{"new wins", []netip.Addr{addrA}, []netip.Addr{addrA, addrC}, addrA, addrC},
		{"current gone", []netip.Addr{addrA}, []netip.Addr{addrB}, addrA, addrB},
		{"single same", []netip.Addr{addrA}, []netip.Addr{addrA}, addrA, addrA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pickNext(tt.prev, tt.fresh, tt.cur); got != tt.want {
				t.Errorf("pickNext = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHealerSilentProbeButPeerSends(t *testing.T) {
	w := newHealerWorld(t, "home.example.net:13231", addrA, addrB)
	w.step()
	w.pr.err = errors.New("timeout") // the probe target is silent...
	for range 6 {
		w.peer.rx += 32 // ...but keepalives from the peer keep coming
		w.step()
	}
	if len(w.peer.set) != 1 || w.res.calls != 1 {
		t.Errorf("endpoint moved (%v) or re-resolved (%d) while the peer was sending", w.peer.set, w.res.calls)
	}
	if st := w.h.state(); st.ProbeMisses != 0 || st.ProbesSilent != 6 {
		t.Errorf("state %+v, want 0 misses and 6 silent probes (the baseline is taken when the endpoint is set)", st)
	}
	// The peer goes quiet too: once nothing came for RxAlive (10 s + one
	// interval) the misses count, and 3 of them move the endpoint.
	quiet := w.now
	for w.peer.last() != ap(addrB) {
		if w.now.Sub(quiet) > time.Minute {
			t.Fatalf("endpoint %v a minute after the peer went quiet, want %v", w.peer.last(), addrB)
		}
		w.step()
	}
	if took, limit := w.now.Sub(quiet), KeepaliveTimeout+ProbeInterval+MaxMisses*ProbeInterval+ProbeInterval; took > limit {
		t.Errorf("endpoint moved %v after the peer went quiet, want within %v", took, limit)
	}
}

// TestHealerSilentProbeKeepaliveClock: the probe target drops every query
// and nothing else crosses the tunnel, so the only sign of life is
// wireguard-go's passive keepalive, every 10 s. That is a healthy tunnel:
// no re-resolution, no endpoint change, however long it lasts.
func TestHealerSilentProbeKeepaliveClock(t *testing.T) {
	w := newHealerWorld(t, "home.example.net:13231", addrA, addrC)
	w.step()
	w.pr.err = errors.New("timeout")
	start := w.now
	nextKeepalive := start
	for w.now.Sub(start) < 5*time.Minute {
		if !w.now.Before(nextKeepalive) {
			w.peer.rx += 32 // a keepalive arrived
			nextKeepalive = nextKeepalive.Add(KeepaliveTimeout)
		}
		w.peer.handshake = w.now // handshakes stay fresh (rekeyed every 2 min)
		w.step()
	}
	if len(w.peer.set) != 1 || w.res.calls != 1 {
		t.Errorf("a tunnel with keepalives every 10 s was taken for dead: endpoints %v, resolutions %d", w.peer.set, w.res.calls)
	}
	if st := w.h.state(); st.ProbeMissesTotal != 0 || st.ProbesSilent == 0 {
		t.Errorf("state %+v, want no misses and silent probes counted", st)
	}
}

// TestHealerAnsweringTargetGoesSilent: the probe target answered until
// home moved; its silence is news, so bytes received before it went silent
// (LAN traffic, say) delay nothing beyond the step they fall in, and the
// name is re-resolved after 3 misses as before: the 30 s bar holds.
func TestHealerAnsweringTargetGoesSilent(t *testing.T) {
	w := newHealerWorld(t, "home.example.net:13231", addrA)
	w.step()
	for range 5 {
		w.peer.rx += 100 // answers and LAN traffic
		w.step()
	}
	moved := w.now
	w.peer.rx += 1500 // the last bytes before home moved
	w.pr.err = errors.New("timeout")
	w.res.addrs = []netip.Addr{addrB}
	for w.peer.last() != ap(addrB) {
		if w.now.Sub(moved) > time.Minute {
			t.Fatal("endpoint never moved")
		}
		w.step()
	}
	if took, limit := w.now.Sub(moved), (MaxMisses+1)*ProbeInterval; took > limit {
		t.Errorf("endpoint moved %v after home went silent; want within %v", took, limit)
	}
}

// TestHealerUnchangedRecordBackoff: home is down and its record does not
// change. The healer asks at the third miss and at each of the next 5
// misses, then backs off to at most 30 s between questions; a changed
// record is still taken up at the next question, and resets the back-off.
func TestHealerUnchangedRecordBackoff(t *testing.T) {
	w := newHealerWorld(t, "home.example.net:13231", addrA)
	w.step()
	w.pr.err = errors.New("timeout")
	firstMiss := w.now
	var at []time.Duration // resolutions, relative to the first miss
	for w.now.Sub(firstMiss) < 5*time.Minute {
		calls := w.res.calls
		w.step()
		if w.res.calls != calls {
			at = append(at, w.now.Sub(firstMiss)-ProbeInterval) // step already advanced the clock
		}
	}
	if len(w.peer.set) != 1 {
		t.Fatalf("endpoint set again while the record did not change: %v", w.peer.set)
	}
	// Misses 3 to 8: every step (3 s).
	for i := 0; i < UnchangedFree; i++ {
		want := time.Duration(MaxMisses-1+i) * ProbeInterval
		if i >= len(at) || at[i] != want {
			t.Fatalf("resolutions at %v; want one at %v (miss %d)", at, want, MaxMisses+i)
		}
	}
	// Then back-off, growing, never above 30 s (+ one interval of cadence).
	prev := ProbeInterval
	for i := UnchangedFree; i < len(at); i++ {
		gap := at[i] - at[i-1]
		if gap < prev || gap > ResolveBackoffMax+ProbeInterval {
			t.Errorf("gap %v between resolutions %d and %d (after %v); want growing up to %v", gap, i-1, i, prev, ResolveBackoffMax)
		}
		prev = gap
	}
	if n := len(at); n > UnchangedFree+12 {
		t.Errorf("%d resolutions in 5 minutes of an unchanged record; want back-off (%v)", n, at)
	}
	// The record changes while the healer backs off: taken up within 30 s.
	w.res.addrs = []netip.Addr{addrB}
	changed := w.now
	for w.peer.last() != ap(addrB) {
		if w.now.Sub(changed) > ResolveBackoffMax+ProbeInterval {
			t.Fatalf("record change not taken up within %v", ResolveBackoffMax+ProbeInterval)
		}
		w.step()
	}
	if w.h.unchanged != 0 || !w.h.nextUnchanged.IsZero() {
		t.Errorf("back-off not reset by the change: unchanged %d, next %v", w.h.unchanged, w.h.nextUnchanged)
	}
}

// TestHealerRunCadence: run keeps the interval from the start of each
// step, so a probe's timeout does not stretch it.
func TestHealerRunCadence(t *testing.T) {
	w := newHealerWorld(t, "198.51.100.2:13231")
	w.pr.err = context.DeadlineExceeded
	now := t0
	var waits []time.Duration
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	probeTakes := ProbeTimeout
	w.h.probe = probeFunc(func(ctx context.Context) error { now = now.Add(probeTakes); return context.DeadlineExceeded })
	after := func(d time.Duration) <-chan time.Time {
		waits = append(waits, d)
		if len(waits) == 4 {
			cancel()
			return nil // never fires: run must return on ctx
		}
		now = now.Add(d)
		c := make(chan time.Time, 1)
		c <- now
		return c
	}
	w.h.run(ctx, func() time.Time { return now }, after)
	want := []time.Duration{ProbeInterval, ProbeInterval - probeTakes, ProbeInterval - probeTakes, ProbeInterval - probeTakes}
	if len(waits) != len(want) {
		t.Fatalf("waits %v", waits)
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Errorf("waits %v, want %v", waits, want)
			break
		}
	}
}

type probeFunc func(ctx context.Context) error

func (f probeFunc) Probe(ctx context.Context) error { return f(ctx) }

// TestHealerRoamedPeerNotAlive: the tunnel ran on :13231 until the port
// was blocked outbound, and the healer moved to :443, where the target
// answers. Then home's own handshake retries, let in from :13231 through a
// mapping left open, roam the peer back there. Bytes keep coming, from
// there only, and no probe is answered: they are not taken for a live
// tunnel. The healer sets its endpoint back at once and starts a handshake
// there, counts each reset, and the misses count. Controls, first: bytes
// from the endpoint set, and from one the peer roamed to that the healer
// never left (home's new address), count as alive as before.
func TestHealerRoamedPeerNotAlive(t *testing.T) {
	w, _ := newListWorld(t, "home.example.net:13231, home.example.net:443",
		map[string][]netip.Addr{"home.example.net": {addrA}})
	w.step() // boot: A:13231
	w.pr.err = errors.New("timeout")
	set := ap443(addrA)
	w.stepUntil(t, "the second entry", time.Minute, func() bool { return w.peer.last() == set })
	w.pr.err = nil
	for range 3 {
		w.peer.rx += 100 // the target answers through :443
		w.step()
	}

	w.pr.err = errors.New("timeout")
	w.peer.rx += 148 // bytes from the endpoint set: alive
	w.step()
	w.peer.roamed = ap443(addrB) // a roam to an address never left: alive
	w.peer.rx += 148
	w.step()
	if st := w.h.state(); st.ProbeMisses != 0 || st.ProbesSilent != 2 || st.EndpointRoamResets != 0 || len(w.peer.handshakes) != 0 {
		t.Fatalf("controls: state %+v, handshakes %v; want both silent probes taken as alive", st, w.peer.handshakes)
	}
	if ep, _ := w.peer.Endpoint(); ep != ap443(addrB) {
		t.Fatalf("the peer is at %v, want left where it roamed (%v)", ep, ap443(addrB))
	}

	blocked := ap(addrA)
	changes := w.h.state().EndpointChanges
	for i := range 2 {
		w.peer.roamed = blocked // home's retry roamed the peer back to the port left
		w.peer.rx += 148
		w.step()
		st := w.h.state()
		if st.ProbeMisses != i+1 || st.EndpointRoamResets != uint64(i+1) {
			t.Fatalf("retry %d from %v: misses %d, roam resets %d; want %d and %d", i+1, blocked, st.ProbeMisses, st.EndpointRoamResets, i+1, i+1)
		}
		if ep, _ := w.peer.Endpoint(); ep != set {
			t.Fatalf("retry %d: the peer stays at %v, want set back to %v", i+1, ep, set)
		}
		if n := len(w.peer.handshakes); n != i+1 || w.peer.handshakes[n-1] != set {
			t.Fatalf("retry %d: handshakes started %v, want one more, to %v", i+1, w.peer.handshakes, set)
		}
		if !strings.Contains(st.LastError, blocked.String()) {
			t.Errorf("last error %q does not say where the peer roamed", st.LastError)
		}
	}
	if got := w.h.state().EndpointChanges; got != changes {
		t.Errorf("endpoint changes %d, want %d: setting the same endpoint back is not a change", got, changes)
	}
}

// TestHealerRoamedPeerSilentTarget: where the probe target never answered
// (it drops the probes), received bytes stay the only sign of life, also
// from an endpoint the healer left and the peer roamed back to.
func TestHealerRoamedPeerSilentTarget(t *testing.T) {
	w, _ := newListWorld(t, "home.example.net:13231, home.example.net:443",
		map[string][]netip.Addr{"home.example.net": {addrA}})
	w.pr.err = errors.New("timeout")
	w.step() // boot: A:13231
	w.stepUntil(t, "the second entry", time.Minute, func() bool { return w.peer.last() == ap443(addrA) })
	total := w.h.state().ProbeMissesTotal
	w.peer.roamed = ap(addrA)
	for range 6 {
		w.peer.rx += 32
		w.step()
	}
	st := w.h.state()
	if st.ProbeMissesTotal != total || st.EndpointRoamResets != 0 || len(w.peer.handshakes) != 0 {
		t.Errorf("state %+v, handshakes %v: a peer that sends was taken for dead while the target never answered", st, w.peer.handshakes)
	}
	if ep, _ := w.peer.Endpoint(); ep != ap(addrA) {
		t.Errorf("the peer is at %v, want left where it roamed (%v)", ep, ap(addrA))
	}
}

func ap443(a netip.Addr) netip.AddrPort { return netip.AddrPortFrom(a, 443) }
