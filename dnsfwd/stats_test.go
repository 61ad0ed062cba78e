package dnsfwd

import (
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

func TestCollector(t *testing.T) {
	up := startUpstream(t, answerA("192.0.2.13", 60))
	f := startForwarder(t, up.addr, nil)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(f.Collector()); err != nil {
		t.Fatalf("register: %v", err)
	}
	exchange(t, f, "udp", query("m.example", dns.TypeA))
	exchange(t, f, "udp", query("m.example", dns.TypeA))
	waitFor(t, func() bool { return f.Stats().OK == 2 })
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	got := map[string]float64{}
	for _, mf := range fams {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetValue() + "}"
			}
			switch {
			case m.Counter != nil:
				got[name] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				got[name] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				got[name] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	for name, want := range map[string]float64{
		"fobgw_dns_queries_total":                  2,
		"fobgw_dns_answers_total{ok}":              2,
		"fobgw_dns_answers_total{servfail}":        0,
		"fobgw_dns_cache_lookups_total{hit}":       1,
		"fobgw_dns_cache_lookups_total{miss}":      1,
		"fobgw_dns_upstream_inflight":              0,
		"fobgw_dns_cache_entries":                  1,
		"fobgw_dns_upstream_latency_seconds":       1,
		"fobgw_dns_dropped_total{non_lan}":         0,
		"fobgw_dns_upstream_events_total{timeout}": 0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if v := got["fobgw_dns_cache_bytes"]; v < 50 || v > 1000 {
		t.Errorf("fobgw_dns_cache_bytes = %v, want the cost of one small answer", v)
	}
}
