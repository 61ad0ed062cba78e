package health

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/fobgw/fobgw/config"
)

// The Endpoint list: when the tunnel stops answering and every address of
// the entry in use has been tried, the healer goes to the next entry and
// stays on the first that answers. While on another entry than the first,
// it tries the first again every Failback: a trial points the peer at it,
// and unless a probe is answered there within TrialMisses probes, the
// working entry is set again. A single entry keeps the plain behaviour of
// healer.go (re-resolve and rotate through its records).

// trial is a try of the first entry; what to go back to if it fails.
type trial struct {
	entry    int
	endpoint netip.AddrPort
	records  []netip.Addr
	reason   string
	misses   int
}

// cur is the entry in use.
func (h *Healer) cur() config.Endpoint { return h.eps[h.entry] }

// setEntryStatus shows entry i and why it is in use.
func (h *Healer) setEntryStatus(i int, why string) {
	e := h.eps[i]
	h.update(func(s *healerState) {
		s.EndpointEntry = e.String()
		s.EndpointEntryReason = why
		s.EndpointName = ""
		if !e.IsLiteral() {
			s.EndpointName = e.Host
		}
	})
}

// enterEntry makes entry i the one in use, at addr.
func (h *Healer) enterEntry(now time.Time, i int, records []netip.Addr, addr netip.Addr, how, why string) {
	h.entry = i
	h.tried = h.tried[:0]
	if i != 0 && h.nextFailback.IsZero() {
		h.nextFailback = now.Add(h.cfg.Failback)
	}
	if i == 0 {
		h.nextFailback = time.Time{}
	}
	h.setEntryStatus(i, why)
	h.setEndpoint(now, records, addr, how)
}

// reresolveList is reresolve for a list: an address of the entry in use
// not tried since the tunnel last answered, else the next entry.
func (h *Healer) reresolveList(ctx context.Context, now time.Time, st healerState, reason string) time.Duration {
	if now.Before(h.nextResolve) {
		return h.cfg.Interval
	}
	e := h.cur()
	if !e.IsLiteral() {
		addrs, err := h.resolve(ctx, e.Host)
		if err == nil {
			var untried []netip.Addr
			for _, a := range addrs {
				if !slices.Contains(h.tried, a) {
					untried = append(untried, a)
				}
			}
			if len(untried) > 0 {
				h.setEndpoint(now, addrs, pickNext(st.EndpointRecords, untried, st.Endpoint.Addr()), "re-resolved")
				return h.cfg.Interval
			}
		} else {
			reason += "; " + err.Error()
		}
	}
	why := fmt.Sprintf("%s did not answer (%s; %d address(es) tried)", e, reason, len(h.tried))
	return h.advance(ctx, now, why)
}

// advance goes to the next entry that gives an address, around the list;
// when none does, it keeps the endpoint and backs off.
func (h *Healer) advance(ctx context.Context, now time.Time, why string) time.Duration {
	n := len(h.eps)
	var lastErr error
	for k := 1; k <= n; k++ {
		i := (h.entry + k) % n
		e := h.eps[i]
		var addrs []netip.Addr
		addr := e.Addr
		if !e.IsLiteral() {
			var err error
			if addrs, err = h.resolve(ctx, e.Host); err != nil {
				lastErr = err
				continue
			}
			addr = addrs[0]
		}
		h.backoff, h.nextResolve = h.cfg.BackoffMin, time.Time{}
		h.switchEntry(now, i, addrs, addr, why)
		return h.cfg.Interval
	}
	h.nextResolve = now.Add(h.backoff)
	h.backoff = min(h.backoff*2, h.cfg.BackoffMax)
	h.log.Warn("no entry of the Endpoint list resolves; keeping the current address", "err", lastErr)
	return h.cfg.Interval
}

// switchEntry goes to entry i (logged and counted unless it is the one in
// use).
func (h *Healer) switchEntry(now time.Time, i int, addrs []netip.Addr, addr netip.Addr, why string) {
	from := h.cur()
	if i != h.entry {
		h.update(func(s *healerState) { s.EndpointEntrySwitches++ })
		h.log.Warn("endpoint entry switched", "from", from.String(), "to", h.eps[i].String(), "why", why)
	}
	h.enterEntry(now, i, addrs, addr, "entry "+h.eps[i].String(), why)
}

// failbackDue reports whether it is time to try the first entry again.
func (h *Healer) failbackDue(now time.Time) bool {
	return h.entry != 0 && !h.nextFailback.IsZero() && !now.Before(h.nextFailback)
}

// startTrial points the peer at the first entry, remembering the working
// one.
func (h *Healer) startTrial(ctx context.Context, now time.Time, st healerState) time.Duration {
	h.nextFailback = now.Add(h.cfg.Failback)
	first := h.eps[0]
	var addrs []netip.Addr
	addr := first.Addr
	if !first.IsLiteral() {
		var err error
		if addrs, err = h.resolve(ctx, first.Host); err != nil {
			h.log.Info("the first endpoint entry does not resolve; staying", "entry", first.String(), "err", err)
			return h.cfg.Interval
		}
		addr = addrs[0]
	}
	h.trial = &trial{entry: h.entry, endpoint: st.Endpoint, records: st.EndpointRecords, reason: st.EndpointEntryReason}
	h.update(func(s *healerState) { s.EndpointEntryTrials++ })
	h.log.Info("trying the first endpoint entry again", "entry", first.String(), "working", h.cur().String())
	back := h.cur().String()
	h.entry = 0
	h.setEntryStatus(0, "trying the first entry again (working: "+back+")")
	h.setEndpoint(now, addrs, addr, "trial")
	return h.cfg.Interval
}

// trialStep ends the trial when the first entry answered (it stays) or
// after TrialMisses unanswered probes (the working entry is set again). An
// answer that came after the peer roamed back to the working address does
// not count.
func (h *Healer) trialStep(now time.Time, answered bool, misses int) time.Duration {
	t := h.trial
	want := h.state().Endpoint
	if answered {
		if ep, err := h.peer.Endpoint(); err == nil && ep.IsValid() && ep != want {
			answered = false
		}
	}
	if answered {
		h.trial = nil
		h.nextFailback = time.Time{}
		h.update(func(s *healerState) { s.EndpointEntrySwitches++ })
		h.setEntryStatus(0, "the first entry answers again")
		h.log.Warn("endpoint entry switched", "from", h.eps[t.entry].String(), "to", h.cur().String(),
			"why", "the first entry answers again")
		return h.cfg.Interval
	}
	t.misses++
	if t.misses < h.cfg.TrialMisses {
		return h.cfg.Interval
	}
	h.trial = nil
	h.entry = t.entry
	h.tried = h.tried[:0]
	h.setEntryStatus(t.entry, t.reason)
	h.setEndpoint(now, t.records, t.endpoint.Addr(), "back after a trial")
	h.log.Info("the first endpoint entry still does not answer; back on the working one",
		"first", h.eps[0].String(), "working", h.cur().String(), "next_try", h.nextFailback.Sub(now))
	return h.cfg.Interval
}
