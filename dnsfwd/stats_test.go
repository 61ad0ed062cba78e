package dnsfwd

import (
	"reflect"
	"regexp"
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
		"fobgw_dns_malformed_total":                0,
		"fobgw_dns_refused_full_total":             0,
		"fobgw_dns_upstream_retransmits_total":     0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if v := got["fobgw_dns_cache_bytes"]; v < 50 || v > 1000 {
		t.Errorf("fobgw_dns_cache_bytes = %v, want the cost of one small answer", v)
	}
}

// TestStatsOneSource: every field of Stats has a snake_case JSON name (the gateway's status embeds
// it) and feeds at least one row of metricTable, so status and metrics read the same counters.
func TestStatsOneSource(t *testing.T) {
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	typ := reflect.TypeFor[Stats]()
	var zero Stats
	for i := range typ.NumField() {
		f := typ.Field(i)
		if tag := f.Tag.Get("json"); !snake.MatchString(tag) {
			t.Errorf("Stats.%s: JSON name %q, want snake_case", f.Name, tag)
		}
		var s Stats
		v := reflect.ValueOf(&s).Elem().Field(i)
		if v.CanUint() {
			v.SetUint(7)
		} else {
			v.SetInt(7)
		}
		read := false
		for _, m := range metricTable {
			read = read || m.value(&s) != m.value(&zero)
		}
		if !read {
			t.Errorf("Stats.%s feeds no metric: add a row to metricTable", f.Name)
		}
	}
	seen := map[string]string{}
	for _, m := range metricTable {
		if h, ok := seen[m.name]; ok && m.help != "" {
			t.Errorf("%s: help given twice (%q): only its first row has it", m.name, h)
		} else if !ok && m.help == "" {
			t.Errorf("%s: its first row has no help", m.name)
		}
		if _, ok := seen[m.name]; !ok {
			seen[m.name] = m.help
		}
	}
}
