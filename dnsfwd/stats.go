package dnsfwd

import (
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats is a snapshot of the forwarder's counters since New, the one source of every DNS figure:
// the gateway's status embeds it (hence the JSON names) and the Prometheus metrics read it through
// metricTable. Every answer sent to a client is counted once under its result (OK ... OtherRcode,
// Truncated); every query not answered once under Dropped.
type Stats struct {
	Queries uint64 `json:"queries"` // messages received from LAN clients (UDP datagrams and TCP messages)

	OK          uint64 `json:"ok"`           // answered NOERROR (from the cache or the upstream)
	NXDomain    uint64 `json:"nxdomain"`     // answered NXDOMAIN
	ServFail    uint64 `json:"servfail"`     // answered SERVFAIL: upstream SERVFAIL, timeout or unreachable
	Refused     uint64 `json:"refused"`      // answered REFUSED: by the upstream, or RefusedFull
	FormErr     uint64 `json:"formerr"`      // answered FORMERR (upstream, or Malformed) or NOTIMP (opcode not QUERY)
	OtherRcode  uint64 `json:"other_rcode"`  // answered with another RCODE
	Truncated   uint64 `json:"truncated"`    // answered with TC set because the answer exceeded the client's UDP size
	Dropped     uint64 `json:"dropped"`      // not answered: not a query, UDP query above 4096 bytes, client outside LAN, TCP client's queue full (it does not read), write failed, shut down
	NonLAN      uint64 `json:"non_lan"`      // of Dropped: the client was outside the LAN prefixes
	Malformed   uint64 `json:"malformed"`    // queries answered FORMERR because they did not parse whole (parseQuery): never forwarded nor cached
	RefusedFull uint64 `json:"refused_full"` // of Refused: answered at once because MaxInFlight upstream queries were already pending
	CacheHits   uint64 `json:"cache_hits"`   // answered from the cache
	CacheMisses uint64 `json:"cache_misses"` // not in the cache: forwarded to the upstream, or coalesced
	Coalesced   uint64 `json:"coalesced"`    // of CacheMisses: joined an identical question already in flight

	InFlight         int64  `json:"in_flight"`         // upstream queries pending now
	UpstreamTimeouts uint64 `json:"upstream_timeouts"` // upstream queries that got no valid answer within Timeout
	UpstreamErrors   uint64 `json:"upstream_errors"`   // upstream sockets that failed to dial, write or read
	Retransmits      uint64 `json:"retransmits"`       // UDP queries sent upstream again (new ID, new socket) after no answer in time
	Mismatched       uint64 `json:"mismatched"`        // upstream answers dropped: unknown ID (late answers to a retransmitted query too), or question not matching the query
	TruncatedRetried uint64 `json:"truncated_retried"` // upstream UDP answers with TC retried over TCP
	Local            uint64 `json:"local"`             // questions answered through Resolver (local breakout), from it or the cache
	LocalSetErrors   uint64 `json:"local_set_errors"`  // LocalDomains answers not sent (SERVFAIL instead) because LocalSet failed
	CacheEntries     int    `json:"cache_entries"`     // entries in the cache now
	CacheBytes       int    `json:"cache_bytes"`       // bytes they cost now, as counted against Config.CacheBytes
}

type counters struct {
	queries, ok, nxdomain, servfail, refused, formerr, other, truncated atomic.Uint64
	dropped, nonLAN, malformed, full, hits, misses, coalesced           atomic.Uint64
	timeouts, upErrors, retransmits, mismatch, tcRetried                atomic.Uint64
	local, localSetErrors                                               atomic.Uint64
	inflight                                                            atomic.Int64
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
		Malformed:        c.malformed.Load(),
		RefusedFull:      c.full.Load(),
		CacheHits:        c.hits.Load(),
		CacheMisses:      c.misses.Load(),
		Coalesced:        c.coalesced.Load(),
		InFlight:         c.inflight.Load(),
		UpstreamTimeouts: c.timeouts.Load(),
		UpstreamErrors:   c.upErrors.Load(),
		Retransmits:      c.retransmits.Load(),
		Mismatched:       c.mismatch.Load(),
		TruncatedRetried: c.tcRetried.Load(),
		Local:            c.local.Load(),
		LocalSetErrors:   c.localSetErrors.Load(),
	}
	if f.cache != nil {
		s.CacheEntries = f.cache.len()
		s.CacheBytes = f.cache.size()
	}
	return s
}

// metric is one Prometheus series read from Stats: name (after fobgw_dns_), help (on the first row
// of a name; later rows of that name leave it empty), kind, and an optional label "name=value".
type metric struct {
	name  string
	help  string
	kind  prometheus.ValueType
	label string
	value func(*Stats) float64
}

const (
	counter = prometheus.CounterValue
	gauge   = prometheus.GaugeValue
)

// metricTable is every DNS metric but the latency histogram. A new counter is a field of counters,
// of Stats, and one row here.
var metricTable = []metric{
	{"queries_total", "DNS messages received from LAN clients.", counter, "", func(s *Stats) float64 { return float64(s.Queries) }},
	{"answers_total", "Answers sent to clients, by result.", counter, "result=ok", func(s *Stats) float64 { return float64(s.OK) }},
	{"answers_total", "", counter, "result=nxdomain", func(s *Stats) float64 { return float64(s.NXDomain) }},
	{"answers_total", "", counter, "result=servfail", func(s *Stats) float64 { return float64(s.ServFail) }},
	{"answers_total", "", counter, "result=refused", func(s *Stats) float64 { return float64(s.Refused) }},
	{"answers_total", "", counter, "result=formerr", func(s *Stats) float64 { return float64(s.FormErr) }},
	{"answers_total", "", counter, "result=other", func(s *Stats) float64 { return float64(s.OtherRcode) }},
	{"answers_total", "", counter, "result=truncated", func(s *Stats) float64 { return float64(s.Truncated) }},
	{"malformed_total", "Queries answered FORMERR because they did not parse whole; never forwarded.", counter, "", func(s *Stats) float64 { return float64(s.Malformed) }},
	{"refused_full_total", "Queries answered REFUSED at once because the upstream in-flight bound was reached.", counter, "", func(s *Stats) float64 { return float64(s.RefusedFull) }},
	{"dropped_total", "Queries not answered, by reason.", counter, "reason=non_lan", func(s *Stats) float64 { return float64(s.NonLAN) }},
	{"dropped_total", "", counter, "reason=other", func(s *Stats) float64 { return float64(s.Dropped - s.NonLAN) }},
	{"cache_lookups_total", "Cache lookups, by result.", counter, "result=hit", func(s *Stats) float64 { return float64(s.CacheHits) }},
	{"cache_lookups_total", "", counter, "result=miss", func(s *Stats) float64 { return float64(s.CacheMisses) }},
	{"upstream_events_total", "Upstream events: timeout, error, mismatched (answer dropped), tc_retried, overload (answered REFUSED: in-flight bound reached), coalesced (not sent: joined an identical query).", counter, "event=coalesced", func(s *Stats) float64 { return float64(s.Coalesced) }},
	{"upstream_events_total", "", counter, "event=timeout", func(s *Stats) float64 { return float64(s.UpstreamTimeouts) }},
	{"upstream_events_total", "", counter, "event=error", func(s *Stats) float64 { return float64(s.UpstreamErrors) }},
	{"upstream_events_total", "", counter, "event=mismatched", func(s *Stats) float64 { return float64(s.Mismatched) }},
	{"upstream_events_total", "", counter, "event=tc_retried", func(s *Stats) float64 { return float64(s.TruncatedRetried) }},
	{"upstream_events_total", "", counter, "event=overload", func(s *Stats) float64 { return float64(s.RefusedFull) }},
	{"upstream_retransmits_total", "UDP queries sent upstream again, with a new ID from a new source port, after no answer in time.", counter, "", func(s *Stats) float64 { return float64(s.Retransmits) }},
	{"local_answers_total", "Questions answered through Resolver (local breakout), from it or the cache.", counter, "", func(s *Stats) float64 { return float64(s.Local) }},
	{"local_set_errors_total", "LocalDomains answers withheld (SERVFAIL) because their addresses could not be put into the local set.", counter, "", func(s *Stats) float64 { return float64(s.LocalSetErrors) }},
	{"upstream_inflight", "Upstream queries pending.", gauge, "", func(s *Stats) float64 { return float64(s.InFlight) }},
	{"cache_entries", "Entries in the cache.", gauge, "", func(s *Stats) float64 { return float64(s.CacheEntries) }},
	{"cache_bytes", "Bytes the cache's entries cost, answers and bookkeeping.", gauge, "", func(s *Stats) float64 { return float64(s.CacheBytes) }},
}

// Collector returns a prometheus.Collector of the figures of metricTable (prefix fobgw_dns_) plus the
// histogram fobgw_dns_upstream_latency_seconds of answered upstream queries. Register it once.
func (f *Forwarder) Collector() prometheus.Collector { return f.metric }

type collector struct {
	f       *Forwarder
	latency prometheus.Histogram
	descs   []*prometheus.Desc // one per row of metricTable (rows of one name share it)
	labels  [][]string         // the label value of each row, or nil
	unique  []*prometheus.Desc // one per name
}

func newCollector(f *Forwarder) *collector {
	c := &collector{
		f: f,
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fobgw_dns_upstream_latency_seconds",
			Help:    "Time from sending a query upstream through the tunnel to its validated answer.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
	}
	byName := map[string]*prometheus.Desc{}
	for _, m := range metricTable {
		var names, values []string
		if k, v, ok := strings.Cut(m.label, "="); ok {
			names, values = []string{k}, []string{v}
		}
		d := byName[m.name]
		if d == nil {
			d = prometheus.NewDesc("fobgw_dns_"+m.name, m.help, names, nil)
			byName[m.name] = d
			c.unique = append(c.unique, d)
		}
		c.descs = append(c.descs, d)
		c.labels = append(c.labels, values)
	}
	return c
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.unique {
		ch <- d
	}
	c.latency.Describe(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.f.Stats()
	for i, m := range metricTable {
		ch <- prometheus.MustNewConstMetric(c.descs[i], m.kind, m.value(&s), c.labels[i]...)
	}
	c.latency.Collect(ch)
}
