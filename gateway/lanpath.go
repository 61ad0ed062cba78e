package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/fobgw/fobgw/config"
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

// lanPath checks the LAN's own way home: the tunnel probe (the healer's)
// is sent from the tunnel address, which a home peer allowing only that
// address passes while it drops every packet of the LAN. This probe is
// sent from the LAN address right after each answered tunnel probe (the
// healer pokes it), so an unanswered one means that the home peer drops
// the LAN, not that the tunnel is down.
type lanPath struct {
	probe    tunnelProber
	tunnelOK func(now time.Time) bool // the tunnel probe was answered lately
	lan      string                   // the LAN's prefixes, for the message
	masq     bool                     // Masquerade is on
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger
	kick     chan struct{} // a tunnel probe was answered; buffered, 1

	misses int  // in a row
	warned bool // the warning was logged and the path has not recovered

	mu sync.Mutex
	st LANPathStatus // protected by mu
}

func (l *lanPath) state() LANPathStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

// poke asks for a probe: the tunnel probe was just answered. It never
// blocks (the healer calls it).
func (l *lanPath) poke() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// run probes after each poke and looks at the tunnel every interval until
// ctx is done.
func (l *lanPath) run(ctx context.Context, now func() time.Time) {
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
func (l *lanPath) idle(now time.Time) {
	if l.tunnelOK(now) {
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
func (l *lanPath) step(ctx context.Context, now time.Time) {
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
func tunnelAnswered(h *healer) func(time.Time) bool {
	return func(now time.Time) bool {
		last := h.state().LastProbeOK
		return !last.IsZero() && now.Sub(last) <= 2*h.cfg.Interval+h.cfg.Timeout
	}
}

// newLANPath returns the LAN-path check for cfg, or nil when the LAN
// address and the probe's are of different families (no path to compare).
func newLANPath(cfg *config.Config, h *healer, log *slog.Logger) *lanPath {
	src := cfg.DNSListen.Addr()
	if src.Is4() != cfg.Probe.Addr().Is4() {
		return nil
	}
	l := &lanPath{
		probe:    &dnsProber{iface: cfg.Name, addr: cfg.Probe, src: src},
		tunnelOK: tunnelAnswered(h),
		lan:      join(cfg.LAN, ", "),
		masq:     cfg.Masquerade,
		interval: ProbeInterval,
		timeout:  ProbeTimeout,
		log:      log,
		kick:     make(chan struct{}, 1),
	}
	l.st.Source = src.String()
	return l
}
