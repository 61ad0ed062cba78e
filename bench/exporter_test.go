package bench

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsListen is MetricsListen in the lab's fobgw.conf.
func metricsListen(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join(lab.dir, "fobgw.conf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && strings.TrimSpace(k) == "MetricsListen" {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("the lab's fobgw.conf sets no MetricsListen")
	return ""
}

// TestExporterMatchesWgShow: the exporter-named series the gateway serves
// parse with the Prometheus text parser and agree with `wg show fobgw0
// dump` at muc.
func TestExporterMatchesWgShow(t *testing.T) {
	if lab.gateway != "fobgw" {
		t.Skipf("the %s gateway serves no metrics", lab.gateway)
	}
	lab.standard(t)
	addr := metricsListen(t)
	// Scrape, dump, scrape: the counters only grow, so the dump's lie
	// between the two scrapes' (keepalives may pass meanwhile).
	scrape := func() map[string]*dto.MetricFamily {
		out := mustNS(t, "muc", "curl", "-fsS", "--max-time", "5", "http://"+addr+"/metrics")
		p := expfmt.NewTextParser(model.LegacyValidation)
		fams, err := p.TextToMetricFamilies(strings.NewReader(out))
		if err != nil {
			t.Fatalf("the Prometheus text parser rejects /metrics: %v", err)
		}
		return fams
	}
	first := scrape()
	dump := strings.Split(strings.TrimSpace(mustNS(t, "muc", "wg", "show", lab.iface, "dump")), "\n")
	second := scrape()
	if len(dump) != 2 {
		t.Fatalf("wg show %s dump: %d lines, want the device and the home peer", lab.iface, len(dump))
	}
	dev, peer := strings.Split(dump[0], "\t"), strings.Split(dump[1], "\t")
	if len(dev) != 4 || len(peer) != 8 {
		t.Fatalf("wg show dump: %d device fields and %d peer fields, want 4 and 8", len(dev), len(peer))
	}
	if peer[0] != lab.fileString(t, "beg.pub") {
		t.Fatalf("wg show's peer is %s, not the home router", peer[0])
	}
	value := func(fams map[string]*dto.MetricFamily, name string) float64 {
		t.Helper()
		var vals []float64
		for _, m := range fams[name].GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["device"] == lab.iface && l["public_key"] == peer[0] {
				switch {
				case m.Counter != nil:
					vals = append(vals, m.GetCounter().GetValue())
				default:
					vals = append(vals, m.GetGauge().GetValue())
				}
			}
		}
		if len(vals) != 1 {
			t.Fatalf("%s{device=%q,public_key=%q}: %d series, want 1", name, lab.iface, peer[0], len(vals))
		}
		return vals[0]
	}
	for _, c := range []struct {
		name  string
		field int
	}{
		{"wireguard_peer_last_handshake_seconds", 4},
		{"wireguard_peer_receive_bytes_total", 5},
		{"wireguard_peer_transmit_bytes_total", 6},
	} {
		want, err := strconv.ParseFloat(peer[c.field], 64)
		if err != nil {
			t.Fatal(err)
		}
		lo, hi := value(first, c.name), value(second, c.name)
		if want < lo || want > hi || want == 0 {
			t.Errorf("%s: wg show dump says %v, the scrapes before and after %v and %v", c.name, want, lo, hi)
		}
	}
	for _, m := range first["wireguard_device_info"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "public_key" && l.GetValue() != dev[1] {
				t.Errorf("wireguard_device_info's public_key is %s, wg show says %s", l.GetValue(), dev[1])
			}
		}
	}
	if len(first["wireguard_device_info"].GetMetric()) != 1 {
		t.Errorf("%d wireguard_device_info series, want 1", len(first["wireguard_device_info"].GetMetric()))
	}
}
