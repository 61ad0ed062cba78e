package dnsfwd

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats is a snapshot of the forwarder's counters since New. Every answer sent to a client is counted
// once under its result (OK ... OtherRcode, Truncated); every query not answered once under Dropped.
type Stats struct {
	Queries uint64 // messages received from LAN clients (UDP datagrams and TCP messages)

	OK          uint64 // answered NOERROR (from the cache or the upstream)
	NXDomain    uint64 // answered NXDOMAIN
	ServFail    uint64 // answered SERVFAIL: upstream SERVFAIL, timeout, unreachable, or overload
	Refused     uint64 // answered REFUSED by the upstream
	FormErr     uint64 // answered FORMERR (upstream or malformed question) or NOTIMP (opcode not QUERY)
	OtherRcode  uint64 // answered with another RCODE
	Truncated   uint64 // answered with TC set because the answer exceeded the client's UDP size
	Dropped     uint64 // not answered: malformed beyond reply, UDP query above 4096 bytes, client outside LAN, TCP client's queue full (it does not read), write failed, shut down
	NonLAN      uint64 // of Dropped: the client was outside the LAN prefixes
	Overload    uint64 // of ServFail: MaxInFlight upstream queries were already pending
	CacheHits   uint64 // answered from the cache
	CacheMisses uint64 // not in the cache: forwarded to the upstream, or coalesced
	Coalesced   uint64 // of CacheMisses: joined an identical question already in flight

	InFlight         int64  // upstream queries pending now
	UpstreamTimeouts uint64 // upstream queries that got no valid answer within Timeout
	UpstreamErrors   uint64 // upstream sockets that failed to dial, write or read
	Mismatched       uint64 // upstream answers dropped: unknown ID, or question not matching the query
	TruncatedRetried uint64 // upstream UDP answers with TC retried over TCP
	CacheEntries     int    // entries in the cache now
	CacheBytes       int    // bytes they cost now, as counted against Config.CacheBytes
}

type counters struct {
	queries, ok, nxdomain, servfail, refused, formerr, other, truncated   atomic.Uint64
	dropped, nonLAN, overload, hits, misses, timeouts, upErrors, mismatch atomic.Uint64
	tcRetried, coalesced                                                  atomic.Uint64
	inflight                                                              atomic.Int64
}

// answered counts an answer with rcode sent to a client.
func (c *counters) answered(rcode byte) {
	switch rcode {
	case rcodeSuccess:
		c.ok.Add(1)
	case rcodeNXDomain:
		c.nxdomain.Add(1)
	case rcodeServFail:
		c.servfail.Add(1)
	case rcodeRefused:
		c.refused.Add(1)
	case rcodeFormErr, rcodeNotImp:
		c.formerr.Add(1)
	default:
		c.other.Add(1)
	}
}

// Stats returns a snapshot of the counters, taking no lock (figures are read one by one).
func (f *Forwarder) Stats() Stats {
	c := &f.st
	s := Stats{
		Queries:          c.queries.Load(),
		OK:               c.ok.Load(),
		NXDomain:         c.nxdomain.Load(),
		ServFail:         c.servfail.Load(),
		Refused:          c.refused.Load(),
		FormErr:          c.formerr.Load(),
		OtherRcode:       c.other.Load(),
		Truncated:        c.truncated.Load(),
		Dropped:          c.dropped.Load(),
		NonLAN:           c.nonLAN.Load(),
		Overload:         c.overload.Load(),
		CacheHits:        c.hits.Load(),
		CacheMisses:      c.misses.Load(),
		Coalesced:        c.coalesced.Load(),
		InFlight:         c.inflight.Load(),
		UpstreamTimeouts: c.timeouts.Load(),
		UpstreamErrors:   c.upErrors.Load(),
		Mismatched:       c.mismatch.Load(),
		TruncatedRetried: c.tcRetried.Load(),
	}
	if f.cache != nil {
		s.CacheEntries = f.cache.len()
		s.CacheBytes = f.cache.size()
	}
	return s
}

// Collector returns a prometheus.Collector of the same figures (prefix fobgw_dns_) plus the histogram
// fobgw_dns_upstream_latency_seconds of answered upstream queries. Register it once.
func (f *Forwarder) Collector() prometheus.Collector { return f.metric }

type collector struct {
	f       *Forwarder
	latency prometheus.Histogram

	queries, answers, dropped, cache, inflight, upstream, entries, bytes *prometheus.Desc
}

func newCollector(f *Forwarder) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("fobgw_dns_"+name, help, labels, nil)
	}
	return &collector{
		f: f,
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fobgw_dns_upstream_latency_seconds",
			Help:    "Time from sending a query upstream through the tunnel to its validated answer.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		queries:  d("queries_total", "DNS messages received from LAN clients."),
		answers:  d("answers_total", "Answers sent to clients, by result.", "result"),
		dropped:  d("dropped_total", "Queries not answered, by reason.", "reason"),
		cache:    d("cache_lookups_total", "Cache lookups, by result.", "result"),
		inflight: d("upstream_inflight", "Upstream queries pending."),
		upstream: d("upstream_events_total", "Upstream events: timeout, error, mismatched (answer dropped), tc_retried, overload, coalesced (not sent: joined an identical query).", "event"),
		entries:  d("cache_entries", "Entries in the cache."),
		bytes:    d("cache_bytes", "Bytes the cache's entries cost, answers and bookkeeping."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queries, c.answers, c.dropped, c.cache, c.inflight, c.upstream, c.entries, c.bytes} {
		ch <- d
	}
	c.latency.Describe(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.f.Stats()
	counter := func(d *prometheus.Desc, v uint64, label ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), label...)
	}
	counter(c.queries, s.Queries)
	counter(c.answers, s.OK, "ok")
	counter(c.answers, s.NXDomain, "nxdomain")
	counter(c.answers, s.ServFail, "servfail")
	counter(c.answers, s.Refused, "refused")
	counter(c.answers, s.FormErr, "formerr")
	counter(c.answers, s.OtherRcode, "other")
	counter(c.answers, s.Truncated, "truncated")
	counter(c.dropped, s.NonLAN, "non_lan")
	counter(c.dropped, s.Dropped-s.NonLAN, "other")
	counter(c.cache, s.CacheHits, "hit")
	counter(c.cache, s.CacheMisses, "miss")
	counter(c.upstream, s.Coalesced, "coalesced")
	counter(c.upstream, s.UpstreamTimeouts, "timeout")
	counter(c.upstream, s.UpstreamErrors, "error")
	counter(c.upstream, s.Mismatched, "mismatched")
	counter(c.upstream, s.TruncatedRetried, "tc_retried")
	counter(c.upstream, s.Overload, "overload")
	ch <- prometheus.MustNewConstMetric(c.inflight, prometheus.GaugeValue, float64(s.InFlight))
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(s.CacheEntries))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.CacheBytes))
	c.latency.Collect(ch)
}
