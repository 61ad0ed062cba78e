package gateway

import (
	"context"
	"fmt"
	"log/slog"
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

// lanPath checks the LAN's own way home: the tunnel probe (the healer's)
// is sent from the tunnel address, which a home peer allowing only that
// address passes while it drops every packet of the LAN. This probe is
// sent from the LAN address; answered tunnel probes with unanswered LAN
// probes mean the home peer does not allow the LAN.
type lanPath struct {
	probe    tunnelProber
	tunnelOK func(now time.Time) bool // the tunnel probe was answered lately
	lan      string                   // the LAN's prefixes, for the message
	masq     bool                     // Masquerade is on
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger

	misses int  // in a row while the tunnel answered
	warned bool // the warning was logged and the path has not recovered

	mu sync.Mutex
	st LANPathStatus // protected by mu
}

func (l *lanPath) state() LANPathStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

// run probes every interval until ctx is done.
func (l *lanPath) run(ctx context.Context, now func() time.Time, after func(time.Duration) <-chan time.Time) {
	for {
		start := now()
		d := l.step(ctx, start)
		select {
		case <-ctx.Done():
			return
		case <-after(max(0, d-now().Sub(start))):
		}
	}
}

// step sends one probe and judges it against the tunnel probe, and returns
// the delay until the next. Until the tunnel probe is answered there is
// nothing to compare with: no probe is sent, status says why, and the
// tunnel is looked at again soon.
func (l *lanPath) step(ctx context.Context, now time.Time) time.Duration {
	if !l.tunnelOK(now) {
		l.mu.Lock()
		l.st.OK = false
		l.st.Reason = "the tunnel does not answer: see the endpoint and the handshake"
		l.mu.Unlock()
		l.misses = 0
		return l.interval / 4
	}
	pctx, cancel := context.WithTimeout(ctx, l.timeout)
	err := l.probe.Probe(pctx)
	cancel()
	if ctx.Err() != nil {
		return 0
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
		return l.interval
	}
	l.misses++
	if l.misses >= LANPathMisses && !l.warned {
		l.warned = true
		l.log.Warn("the LAN's packets do not get through the tunnel: "+reason, "source", src)
	}
	return l.interval
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
func newLANPath(cfg *Config, h *healer, log *slog.Logger) *lanPath {
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
	}
	l.st.Source = src.String()
	return l
}
