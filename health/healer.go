package health

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/fobgw/fobgw/clock"
	"github.com/fobgw/fobgw/config"
)

// Healing parameters (the defaults of params).
const (
	ProbeInterval     = 3 * time.Second   // a probe through the tunnel this often
	ProbeTimeout      = 2 * time.Second   // a probe unanswered this long is a miss
	MaxMisses         = 3                 // consecutive misses that trigger a re-resolution
	StaleHandshake    = 135 * time.Second // a handshake older than this triggers one too (the limit wireguard-tools' re-resolve script uses)
	ResolveTimeout    = 5 * time.Second   // for one resolution over all Resolver servers
	ResolveBackoffMin = 1 * time.Second
	ResolveBackoffMax = 30 * time.Second
	// KeepaliveTimeout is wireguard-go's passive keepalive delay: a peer
	// that received data and has nothing to send answers with a keepalive
	// after this long. Bytes received from the peer within
	// KeepaliveTimeout + ProbeInterval prove the tunnel alive even when the
	// probe target drops queries silently.
	KeepaliveTimeout = 10 * time.Second
	// UnchangedFree is how many re-resolutions in a row that return the
	// unchanged record are made at every miss; after that they back off
	// (2, 4, 8 ... probe intervals, at most ResolveBackoffMax) until the
	// record changes or the tunnel answers.
	UnchangedFree = 6
)

// Endpoint list parameters (the defaults of params).
const (
	// FailbackInterval: while on another entry than the first, the first
	// is tried again this often.
	FailbackInterval = 10 * time.Minute
	// TrialMisses: a trial of the first entry ends after this many
	// unanswered probes, and the working entry is set again.
	TrialMisses = 2
)

// Resolver resolves the endpoint's host name (through Resolver only).
type Resolver interface {
	Resolve(ctx context.Context, host string) ([]netip.Addr, error)
}

// Prober sends one probe through the tunnel; nil means answered.
type Prober interface {
	Probe(ctx context.Context) error
}

// Peer is the part of the WireGuard device the healer drives.
type Peer interface {
	SetEndpoint(netip.AddrPort) error
	// Endpoint is the endpoint in use, which roaming may have changed
	// since SetEndpoint.
	Endpoint() (netip.AddrPort, error)
	LastHandshake() (time.Time, error)
	RxBytes() (uint64, error) // bytes received from the peer, monotonic
	// StartHandshake sends a handshake initiation now, unless WireGuard
	// sent one less than REKEY_TIMEOUT ago.
	StartHandshake() error
}

// params are the healer's timing: the package's constants, shortened
// by tests.
type params struct {
	Interval       time.Duration
	Timeout        time.Duration
	MaxMisses      int
	StaleHandshake time.Duration
	// Grace is the time after an endpoint change during which an old
	// handshake does not trigger another change (the new handshake needs
	// up to REKEY_TIMEOUT, 5 s, plus a probe).
	Grace      time.Duration
	BackoffMin time.Duration
	BackoffMax time.Duration
	// RxAlive: bytes received from the peer within this long count as a
	// sign of life (KeepaliveTimeout + Interval).
	RxAlive time.Duration
	// UnchangedFree: re-resolutions with an unchanged record made at every
	// miss before they back off (up to BackoffMax).
	UnchangedFree int
	// Failback: how often the first entry is tried while on another.
	Failback time.Duration
	// TrialMisses: unanswered probes that end a trial of the first entry.
	TrialMisses int
}

func defaultParams() params {
	return params{
		Interval:       ProbeInterval,
		Timeout:        ProbeTimeout,
		MaxMisses:      MaxMisses,
		StaleHandshake: StaleHandshake,
		Grace:          5 * ProbeInterval,
		BackoffMin:     ResolveBackoffMin,
		BackoffMax:     ResolveBackoffMax,
		RxAlive:        KeepaliveTimeout + ProbeInterval,
		UnchangedFree:  UnchangedFree,
		Failback:       FailbackInterval,
		TrialMisses:    TrialMisses,
	}
}

// HealerStatus is the endpoint healer's part of Status, kept by the healer
// itself: its counters and what it found.
type HealerStatus struct {
	EndpointName     string       `json:"endpoint_name"`              // the DDNS name the endpoint came from, "" for a literal
	EndpointRecords  []netip.Addr `json:"endpoint_records,omitempty"` // the last resolution's addresses
	ProbeMisses      int          `json:"probe_misses"`               // consecutive
	ProbeMissesTotal uint64       `json:"probe_misses_total"`
	Probes           uint64       `json:"probes"`
	ProbesSilent     uint64       `json:"probes_silent"` // unanswered while the peer was sending (not misses)
	LastProbeOK      time.Time    `json:"last_probe_ok,omitzero"`
	EndpointChanges  uint64       `json:"endpoint_changes"` // endpoint set to a different address
	Reresolutions    uint64       `json:"reresolutions"`
	ResolveFailures  uint64       `json:"resolve_failures"`

	// EndpointRoamResets: times the peer had roamed back to an endpoint
	// the healer left, while probes went unanswered, and was set back.
	EndpointRoamResets uint64 `json:"endpoint_roam_resets"`

	// The Endpoint list (list.go).
	EndpointEntry         string `json:"endpoint_entry"`        // the list's entry in use, as written
	EndpointEntryReason   string `json:"endpoint_entry_reason"` // why that entry
	EndpointEntrySwitches uint64 `json:"endpoint_entry_switches"`
	EndpointEntryTrials   uint64 `json:"endpoint_entry_trials"` // tries of the first entry while on another

	// The clock (clock.go); nil until the first step.
	Clock *clock.State `json:"clock,omitempty"`
}

// healerState is the healer's state: what Status shows, the endpoint, and
// the last error.
type healerState struct {
	HealerStatus
	Endpoint  netip.AddrPort // current endpoint; invalid while unresolved
	LastError string
}

// Healer keeps the peer's endpoint reachable: it resolves the name at boot
// (retrying with back-off), probes through the tunnel every Interval, and
// after MaxMisses consecutive misses or a handshake older than
// StaleHandshake re-resolves the name and sets the endpoint to the next
// address, preferring one the previous resolution did not have. It is a
// state machine driven by step, so tests run it with a fake clock.
type Healer struct {
	cfg   params
	eps   []config.Endpoint // the Endpoint list, tried in order
	res   Resolver
	probe Prober
	peer  Peer
	log   *slog.Logger
	subs  []func(Event)

	backoff       time.Duration // next resolve back-off
	nextResolve   time.Time     // no resolution before this (back-off after failures)
	lastSwitch    time.Time     // when the endpoint was last set
	warnedTrigger bool          // rate-limits the trigger warning to once per outage
	lastRx        uint64        // rx bytes at the last step
	rxSeen        bool          // lastRx is valid
	lastRxChange  time.Time     // when rx bytes last moved; zero: not seen yet
	unchanged     int           // re-resolutions in a row that returned the unchanged record
	nextUnchanged time.Time     // no resolution before this (back-off while the record stays the same)

	entry        int              // index of the entry in use in eps
	tried        []netip.Addr     // addresses of the entry set since the tunnel last answered
	nextFailback time.Time        // when to try the first entry again; zero: on it
	trial        *trial           // a try of the first entry in progress, or nil
	left         []netip.AddrPort // endpoints the healer moved away from, the latest last (at most maxLeft)

	clk         clock.Source // nil: the clock is not checked
	build       time.Time    // the binary's build time, for clock.Check
	clockWarned bool         // the clock warning was logged and the clock has not recovered

	mu sync.Mutex
	st healerState // protected by mu
}

// Config is what a Healer needs, all of it given to New: nothing is set on
// a Healer afterwards.
type Config struct {
	Endpoints []config.Endpoint // the Endpoint list, tried in order; at least one
	Resolver  Resolver          // resolves the entries' names (never through the tunnel)
	Prober    Prober            // the probe through the tunnel
	Peer      Peer              // the WireGuard device's peer
	Clock     clock.Source      // read at each step; nil: the clock is not checked
	BuildTime time.Time         // the binary's build time, for clock.Check
	Log       *slog.Logger
	// Subscribers are told of the healer's events (see Event), in order, on
	// the healer's goroutine; they must not block.
	Subscribers []func(Event)
}

// Event is news from the healer for the parts that follow the tunnel's
// health: the LAN-path probe and path MTU discovery.
type Event int

const (
	// EndpointSet: the peer was pointed at an endpoint (the first one, or
	// another after a re-resolution, a switch of entry or a trial).
	EndpointSet Event = iota
	// ProbeAnswered: a probe through the tunnel was answered.
	ProbeAnswered
	// ProbeMissed: a probe through the tunnel went unanswered (counted as a
	// miss or not: the peer may still be sending).
	ProbeMissed
)

func (e Event) String() string {
	switch e {
	case EndpointSet:
		return "endpoint set"
	case ProbeAnswered:
		return "probe answered"
	case ProbeMissed:
		return "probe missed"
	}
	return fmt.Sprintf("Event(%d)", int(e))
}

// New returns the healer for c with the package's timing; Run drives it.
func New(c Config) *Healer { return newHealer(defaultParams(), c) }

func newHealer(p params, c Config) *Healer {
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Healer{cfg: p, eps: c.Endpoints, res: c.Resolver, probe: c.Prober, peer: c.Peer, log: log,
		subs: c.Subscribers, clk: c.Clock, build: c.BuildTime, backoff: p.BackoffMin}
	h.setEntryStatus(0, "first entry")
	return h
}

// notify tells the subscribers of e.
func (h *Healer) notify(e Event) {
	for _, f := range h.subs {
		f(e)
	}
}

// Status is the healer's part of the gateway's status, with the last error.
func (h *Healer) Status() (HealerStatus, string) {
	st := h.state()
	return st.HealerStatus, st.LastError
}

// state returns a copy of the healer's state.
func (h *Healer) state() healerState {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.st
	st.EndpointRecords = slices.Clone(st.EndpointRecords)
	return st
}

func (h *Healer) update(f func(*healerState)) {
	h.mu.Lock()
	f(&h.st)
	h.mu.Unlock()
}

// Run drives the healer until ctx is done.
func (h *Healer) Run(ctx context.Context) { h.run(ctx, time.Now, time.After) }

// run drives step until ctx is done. after is time.After in production.
func (h *Healer) run(ctx context.Context, now func() time.Time, after func(time.Duration) <-chan time.Time) {
	for {
		start := now()
		d := h.step(ctx, start)
		// The interval runs from the start of a step, so that a missed
		// probe's timeout does not stretch the cadence.
		d -= now().Sub(start)
		if d < 0 {
			d = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-after(d):
		}
	}
}

// step does one round of work at time now and returns the delay until the
// next: at boot it resolves the name, then it probes, and decides whether
// to re-resolve.
func (h *Healer) step(ctx context.Context, now time.Time) time.Duration {
	cs := h.checkClock()
	st := h.state()
	if !st.Endpoint.IsValid() {
		return h.boot(ctx, now)
	}
	answered, misses, ok := h.probeOnce(ctx, now, st)
	if !ok {
		return 0
	}
	if answered {
		h.notify(ProbeAnswered)
	} else {
		h.notify(ProbeMissed)
	}
	if h.trial != nil {
		return h.trialStep(now, answered, misses)
	}
	if !answered && cs.BeforeBuild {
		h.excuseMisses()
		return h.cfg.Interval
	}
	if answered && h.failbackDue(now) && cs.OK() {
		return h.startTrial(ctx, now, st)
	}
	reason := h.trigger(now, misses)
	if reason == "" {
		return h.cfg.Interval
	}
	return h.reresolve(ctx, now, st, reason)
}

// boot sets the first endpoint: the first entry of the list whose literal
// address or name gives one; no endpoint until one resolves (retried with
// back-off).
func (h *Healer) boot(ctx context.Context, now time.Time) time.Duration {
	var err error
	for i, e := range h.eps {
		if e.IsLiteral() {
			h.enterEntry(now, i, nil, e.Addr, "configured", "first entry")
			h.sampleRx(now) // the baseline for the first probe step
			return h.cfg.Interval
		}
		var addrs []netip.Addr
		if addrs, err = h.resolve(ctx, e.Host); err == nil {
			h.backoff = h.cfg.BackoffMin
			why := "first entry"
			if i > 0 {
				why = "the entries before it do not resolve"
			}
			h.enterEntry(now, i, addrs, addrs[0], "resolved", why)
			h.sampleRx(now)
			return h.cfg.Interval
		}
	}
	d := h.backoff
	h.backoff = min(h.backoff*2, h.cfg.BackoffMax)
	h.log.Warn("endpoint name does not resolve yet; the LAN stays behind the kill switch meanwhile",
		"name", h.cur().Host, "retry_in", d, "err", err)
	return d
}

// probeOnce sends one probe and counts it: answered, silent while the peer
// sends (no miss), or missed. It returns the consecutive misses; ok is false
// when ctx ended meanwhile. answered is true when the probe itself was.
func (h *Healer) probeOnce(ctx context.Context, now time.Time, st healerState) (answered bool, misses int, ok bool) {
	pctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	perr := h.probe.Probe(pctx)
	cancel()
	if ctx.Err() != nil {
		return false, 0, false
	}
	// Anything received from the peer recently proves the tunnel works
	// even if the probe target is silent (a Pi-hole that drops queries,
	// say): the peer answers our probe's data with a passive keepalive
	// after KeepaliveTimeout (10 s), so without other traffic rx bytes move
	// only every 10 s, and a change within RxAlive (10 s + one interval)
	// counts. Not while the target answered within RxAlive, though: then
	// its silence is news (home moved), and only bytes since the previous
	// step count, so that the endpoint heals within the 30 s bar.
	moved := h.sampleRx(now)
	silentTarget := st.LastProbeOK.IsZero() || now.Sub(st.LastProbeOK) > h.cfg.RxAlive
	rxMoved := moved || silentTarget && !h.lastRxChange.IsZero() && now.Sub(h.lastRxChange) <= h.cfg.RxAlive
	// During a trial of the first entry the working path may still bring
	// bytes in: only an answer to the probe counts.
	rxMoved = rxMoved && h.trial == nil
	// Nor do bytes that come from an endpoint the healer moved away from,
	// while probes go unanswered: they prove nothing about the path that
	// carries ours. A block of the port in use that starts mid-session
	// (outbound only) still lets home's own handshake retries in from it
	// through a mapping left open, and wireguard-go roams back to their
	// source: home sends, our answers and probes go to a port that drops
	// them, and home retries until it gives up, 90 s on. Only a roam back
	// to an endpoint left counts so: one to a new address is how a peer
	// whose address changed reaches us. And only where the probe target
	// is known to answer (it did since start): one that drops probes
	// leaves received bytes as the only sign of life.
	var roamedTo netip.AddrPort
	if perr != nil && rxMoved && !st.LastProbeOK.IsZero() {
		if ep, err := h.peer.Endpoint(); err == nil && ep.IsValid() && ep != st.Endpoint && slices.Contains(h.left, ep) {
			rxMoved, roamedTo = false, ep
		}
	}
	h.update(func(s *healerState) {
		s.Probes++
		if perr != nil && rxMoved {
			s.ProbeMisses = 0
			s.ProbesSilent++
			s.LastError = "probe: " + perr.Error() + " (but the peer sends: tunnel alive)"
		} else if perr == nil {
			s.ProbeMisses = 0
			s.LastProbeOK = now
		} else {
			s.ProbeMisses++
			s.ProbeMissesTotal++
			s.LastError = "probe: " + perr.Error()
			if roamedTo.IsValid() {
				s.LastError += " (the peer sends only from " + roamedTo.String() + ", where it roamed: set back to " + st.Endpoint.String() + ")"
			}
		}
		misses = s.ProbeMisses
	})
	if roamedTo.IsValid() {
		h.resetRoam(roamedTo, st.Endpoint)
	}
	if perr == nil || rxMoved {
		h.unchanged, h.nextUnchanged = 0, time.Time{}
		h.tried = h.tried[:0]
		if h.warnedTrigger {
			h.log.Info("tunnel answers again", "endpoint", st.Endpoint)
			h.warnedTrigger = false
		}
	}
	if perr != nil {
		h.log.Debug("probe missed", "misses", misses, "peer_sends", rxMoved, "err", perr)
	}
	return perr == nil, misses, true
}

// maxLeft bounds the endpoints the healer remembers leaving: every entry's
// port on a few addresses.
const maxLeft = 16

// resetRoam points the peer back at the endpoint the healer set (want),
// from the one roaming took it to (at), without counting a change (the
// misses go on counting), and starts a handshake there: once it completes,
// home stops the retries that roamed the peer (the kick would not start
// one, since those retries are bytes received).
func (h *Healer) resetRoam(at, want netip.AddrPort) {
	if err := h.peer.SetEndpoint(want); err != nil {
		h.log.Error("setting the peer endpoint back failed", "endpoint", want, "roamed_to", at, "err", err)
		return
	}
	h.update(func(s *healerState) { s.EndpointRoamResets++ })
	h.log.Warn("the peer roamed to an endpoint that does not answer probes; set back",
		"roamed_to", at, "endpoint", want)
	if err := h.peer.StartHandshake(); err != nil {
		h.log.Warn("starting a handshake after setting the endpoint back failed", "err", err)
	}
}

// trigger says why the endpoint should be re-resolved now, or "": too many
// misses, or a stale handshake outside the grace after a change.
func (h *Healer) trigger(now time.Time, misses int) string {
	if misses >= h.cfg.MaxMisses {
		return fmt.Sprintf("%d probes missed", misses)
	}
	hs, err := h.peer.LastHandshake()
	if err != nil || now.Sub(h.lastSwitch) <= h.cfg.Grace {
		return ""
	}
	if (hs.IsZero() && now.Sub(h.lastSwitch) > h.cfg.StaleHandshake) || (!hs.IsZero() && now.Sub(hs) > h.cfg.StaleHandshake) {
		return "handshake older than " + h.cfg.StaleHandshake.String()
	}
	return ""
}

// sampleRx reads the bytes received from the peer, notes when they moved,
// and reports whether they did since the previous sample.
func (h *Healer) sampleRx(now time.Time) bool {
	rx, err := h.peer.RxBytes()
	if err != nil {
		return false
	}
	moved := h.rxSeen && rx != h.lastRx
	if moved {
		h.lastRxChange = now
	}
	h.lastRx, h.rxSeen = rx, true
	return moved
}

// setEndpoint points the peer at addr on the entry's port; records are the
// resolution it came from (nil for a literal address).
func (h *Healer) setEndpoint(now time.Time, records []netip.Addr, addr netip.Addr, why string) {
	ap := netip.AddrPortFrom(addr, h.cur().Port)
	if err := h.peer.SetEndpoint(ap); err != nil {
		h.log.Error("setting the peer endpoint failed", "endpoint", ap, "err", err)
		h.update(func(s *healerState) { s.LastError = "set endpoint: " + err.Error() })
		return
	}
	h.lastSwitch = now
	if !slices.Contains(h.tried, addr) {
		h.tried = append(h.tried, addr)
	}
	prev := h.state().Endpoint
	if prev.IsValid() && prev != ap {
		h.left = slices.DeleteFunc(h.left, func(e netip.AddrPort) bool { return e == prev || e == ap })
		if len(h.left) == maxLeft {
			h.left = h.left[1:]
		}
		h.left = append(h.left, prev)
	}
	h.update(func(s *healerState) {
		if s.Endpoint.IsValid() && s.Endpoint != ap {
			s.EndpointChanges++
		}
		s.Endpoint = ap
		s.ProbeMisses = 0
		s.EndpointRecords = records // nil for a literal address
	})
	if prev != ap {
		h.log.Info("peer endpoint set", "endpoint", ap, "name", h.state().EndpointName, "how", why, "records", len(records))
	}
	h.notify(EndpointSet)
}
