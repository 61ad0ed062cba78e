package health

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/fobgw/fobgw/config"
)

// The healer's re-resolution of the entry in use: a fresh resolution, the
// next address (a new one first), and the back-off while the record stays
// the same or the resolver fails.

// reresolve resolves the name again (unless backing off) and sets the
// endpoint to the next address; a literal endpoint is set again.
func (h *Healer) reresolve(ctx context.Context, now time.Time, st healerState, reason string) time.Duration {
	if !h.warnedTrigger {
		h.log.Warn("tunnel does not answer; re-resolving the endpoint", "reason", reason, "endpoint", st.Endpoint, "name", h.cur().Host)
		h.warnedTrigger = true
	}
	if len(h.eps) > 1 {
		return h.reresolveList(ctx, now, st, reason)
	}
	e := h.cur()
	if e.IsLiteral() {
		// Nothing to resolve; set it again in case roaming moved it.
		h.setEndpoint(now, nil, e.Addr, "reset")
		return h.cfg.Interval
	}
	if now.Before(h.nextResolve) || now.Before(h.nextUnchanged) {
		return h.cfg.Interval
	}
	addrs, err := h.resolve(ctx, e.Host)
	if err != nil {
		h.resolveFailed(now, e, err)
		return h.cfg.Interval
	}
	h.backoff = h.cfg.BackoffMin
	h.nextResolve = time.Time{}
	next := pickNext(st.EndpointRecords, addrs, st.Endpoint.Addr())
	if next == st.Endpoint.Addr() && len(addrs) == 1 {
		h.unchangedRecord(now, next, addrs)
		return h.cfg.Interval
	}
	h.unchanged, h.nextUnchanged = 0, time.Time{}
	h.setEndpoint(now, addrs, next, "re-resolved")
	return h.cfg.Interval
}

// unchangedRecord notes a resolution that gave the current address only:
// the record has not followed yet. Nothing is set and the misses stay, so
// that the next miss asks again; after UnchangedFree such answers in a row,
// it asks less often (2, 4, 8 ... intervals, at most BackoffMax) while home
// stays down.
func (h *Healer) unchangedRecord(now time.Time, addr netip.Addr, addrs []netip.Addr) {
	h.unchanged++
	if n := h.unchanged - h.cfg.UnchangedFree + 1; n > 0 {
		d := h.cfg.BackoffMax
		if n < 16 {
			d = min(h.cfg.Interval<<n, h.cfg.BackoffMax)
		}
		h.nextUnchanged = now.Add(d)
	}
	h.log.Debug("endpoint name still resolves to the same address", "addr", addr, "unchanged", h.unchanged)
	h.update(func(s *healerState) { s.EndpointRecords = addrs })
}

// resolveFailed backs off after a failed re-resolution of e.
func (h *Healer) resolveFailed(now time.Time, e config.Endpoint, err error) {
	h.nextResolve = now.Add(h.backoff)
	h.backoff = min(h.backoff*2, h.cfg.BackoffMax)
	h.log.Warn("re-resolving the endpoint failed; keeping the current address", "name", e.Host, "err", err)
}

func (h *Healer) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	rctx, cancel := context.WithTimeout(ctx, ResolveTimeout)
	defer cancel()
	addrs, err := h.res.Resolve(rctx, host)
	if err == nil && len(addrs) == 0 {
		err = fmt.Errorf("no A or AAAA record for %s", host)
	}
	h.update(func(s *healerState) {
		if s.Endpoint.IsValid() {
			s.Reresolutions++
		}
		if err != nil {
			s.ResolveFailures++
			s.LastError = "resolve: " + err.Error()
		}
	})
	return addrs, err
}

// pickNext chooses the next endpoint address from a fresh resolution: an
// address the previous resolution did not have, if any (the record
// followed a move); otherwise the one after cur, rotating through all.
func pickNext(prev, fresh []netip.Addr, cur netip.Addr) netip.Addr {
	for _, a := range fresh {
		if !slices.Contains(prev, a) {
			return a
		}
	}
	i := slices.Index(fresh, cur)
	return fresh[(i+1)%len(fresh)] // i == -1 gives fresh[0]
}
