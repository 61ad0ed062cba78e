package health

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// LANPathMisses is how many LAN-path probes in a row must go unanswered
// while the tunnel answers before the warning is logged (status says so at
// the first).
const LANPathMisses = 2

// LANPathStatus is the LAN path's part of Status: the probe sent from the
// gateway's LAN address through the tunnel, as the LAN's packets travel.
type LANPathStatus struct {
	OK     bool      `json:"ok"`     // the last LAN-path probe was answered
	Source string    `json:"source"` // the LAN address the probe is sent from
	Probes uint64    `json:"probes"`
	Misses uint64    `json:"misses"` // unanswered, in all
	LastOK time.Time `json:"last_ok,omitzero"`
	Reason string    `json:"reason,omitempty"` // why not OK, and the fix
}

// LANPath checks the LAN's own way home: the tunnel probe (the healer's)
// is sent from the tunnel address, which a home peer allowing only that
// address passes while it drops every packet of the LAN. This probe is
// sent from the LAN address right after each answered tunnel probe (the
// healer's ProbeAnswered event), so an unanswered one means that the home
// peer drops the LAN, not that the tunnel is down.
type LANPath struct {
	probe    Prober
	lan      string // the LAN's prefixes, for the message
	masq     bool   // Masquerade is on
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger
	kick     chan struct{} // a tunnel probe was answered; buffered, 1

	misses int  // in a row
	warned bool // the warning was logged and the path has not recovered

	mu       sync.Mutex
	st       LANPathStatus // protected by mu
	tunnelOK time.Time     // when the tunnel probe was last answered; protected by mu
}

// LANPathConfig is what a LANPath needs.
type LANPathConfig struct {
	Interface  string         // the tunnel
	Probe      netip.AddrPort // the probe's target, as the healer's
	Source     netip.Addr     // the LAN address the probe is sent from (DNSListen's)
	LAN        []netip.Prefix // for the message: what the home peer must allow
	Masquerade bool
	Log        *slog.Logger
}

// NewLANPath returns the LAN-path check, or nil when the LAN address and
// the probe's are of different families (no path to compare). Give its
// Observe to the healer as a subscriber, and run it with Run.
func NewLANPath(c LANPathConfig) *LANPath {
	if c.Source.Is4() != c.Probe.Addr().Is4() {
		return nil
	}
	lan := make([]string, len(c.LAN))
	for i, p := range c.LAN {
		lan[i] = p.String()
	}
	return newLANPath(NewDNSProber(c.Interface, c.Probe, c.Source), c.Source, strings.Join(lan, ", "), c.Masquerade, c.Log)
}

func newLANPath(pr Prober, src netip.Addr, lan string, masq bool, log *slog.Logger) *LANPath {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &LANPath{probe: pr, lan: lan, masq: masq, interval: ProbeInterval, timeout: ProbeTimeout, log: log,
		kick: make(chan struct{}, 1)}
	l.st.Source = src.String()
	return l
}

// State is the LAN path's part of the gateway's status.
func (l *LANPath) State() LANPathStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

// Observe is the healer's subscriber: after each answered tunnel probe it
// asks for a LAN-path probe. It never blocks.
func (l *LANPath) Observe(e Event) {
	if e == ProbeAnswered {
		l.poke(time.Now())
	}
}

// poke notes a tunnel probe answered at now and asks for a probe. It never
// blocks.
func (l *LANPath) poke(now time.Time) {
	l.mu.Lock()
	l.tunnelOK = now
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Run probes after each answered tunnel probe and looks at the tunnel
// every interval until ctx is done.
func (l *LANPath) Run(ctx context.Context) { l.run(ctx, time.Now) }

// run probes after each poke and looks at the tunnel every interval until
// ctx is done.
func (l *LANPath) run(ctx context.Context, now func() time.Time) {
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.kick:
			l.step(ctx, now())
		case <-t.C:
			l.idle(now())
		}
	}
}

// idle notes a tunnel that has not answered lately: there is nothing to
// compare the LAN path with, and status says why.
func (l *LANPath) idle(now time.Time) {
	if l.tunnelAnswered(now) {
		return
	}
	l.mu.Lock()
	l.st.OK = false
	l.st.Reason = "the tunnel does not answer: see the endpoint and the handshake"
	l.mu.Unlock()
	l.misses = 0
}

// step sends one probe, just after the tunnel probe was answered, and
// judges it.
func (l *LANPath) step(ctx context.Context, now time.Time) {
	pctx, cancel := context.WithTimeout(ctx, l.timeout)
	err := l.probe.Probe(pctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	reason := ""
	switch {
	case err == nil:
	case l.masq:
		reason = fmt.Sprintf("the tunnel address is answered through the tunnel but the LAN address is not, though Masquerade is on: check `nft list table inet fobgw` (%v)", err)
	default:
		reason = fmt.Sprintf("the tunnel address is answered through the tunnel but the LAN address is not: the home peer must allow %s: `fobgw home-config` prints it, or set Masquerade = on", l.lan)
	}
	l.mu.Lock()
	l.st.Probes++
	l.st.OK = err == nil
	l.st.Reason = reason
	if err == nil {
		l.st.LastOK = now
	} else {
		l.st.Misses++
	}
	src := l.st.Source
	l.mu.Unlock()

	if err == nil {
		l.misses = 0
		if l.warned {
			l.warned = false
			l.log.Info("the LAN path answers again", "source", src)
		}
		return
	}
	l.misses++
	if l.misses >= LANPathMisses && !l.warned {
		l.warned = true
		l.log.Warn("the LAN's packets do not get through the tunnel: "+reason, "source", src)
	}
}

// tunnelAnswered reports whether the healer's probe was answered within
// two intervals and a timeout of now.
func (l *LANPath) tunnelAnswered(now time.Time) bool {
	l.mu.Lock()
	last := l.tunnelOK
	l.mu.Unlock()
	return !last.IsZero() && now.Sub(last) <= 2*l.interval+l.timeout
}
