package wgexport

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape registers c alone and returns its families as the Prometheus text
// format says them, parsed back by the Prometheus text parser, keyed by name.
func scrape(t testing.TB, c prometheus.Collector) (map[string]*dto.MetricFamily, string, error) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, gerr := reg.Gather()
	var buf bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatal(err)
		}
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	parsed, err := p.TextToMetricFamilies(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("the Prometheus text parser rejects the exposition: %v\n%s", err, buf.String())
	}
	return parsed, buf.String(), gerr
}

// series is the value of the one series of family name whose labels include
// want; it fails the test when there is not exactly one.
func series(t testing.TB, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	mf := fams[name]
	if mf == nil {
		t.Fatalf("no family %s", name)
	}
	var found []float64
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if got[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			found = append(found, m.GetCounter().GetValue())
		case m.Gauge != nil:
			found = append(found, m.GetGauge().GetValue())
		default:
			found = append(found, m.GetUntyped().GetValue())
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d series, want 1", name, want, len(found))
	}
	return found[0]
}

func TestCollector(t *testing.T) {
	fams, text, err := scrape(t, NewCollector("fobgw0", func() (string, error) { return sample, nil }))
	if err != nil {
		t.Fatal(err)
	}
	a, b := mustKey(t, peerA).String(), mustKey(t, peerB).String()
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
		typ    dto.MetricType
	}{
		{MetricPeerReceiveBytes, map[string]string{"device": "fobgw0", "public_key": a}, 567890, dto.MetricType_COUNTER},
		{MetricPeerTransmitBytes, map[string]string{"device": "fobgw0", "public_key": a}, 1234, dto.MetricType_COUNTER},
		{MetricPeerLastHandshake, map[string]string{"device": "fobgw0", "public_key": a}, 1764321720, dto.MetricType_GAUGE},
		{MetricPeerLastHandshake, map[string]string{"device": "fobgw0", "public_key": b}, 0, dto.MetricType_GAUGE},
		{MetricPeerInfo, map[string]string{"device": "fobgw0", "public_key": a, "endpoint": "198.51.100.2:13231",
			"allowed_ips": "0.0.0.0/0,::/0", "name": ""}, 1, dto.MetricType_GAUGE},
		{MetricPeerInfo, map[string]string{"public_key": b, "endpoint": "", "allowed_ips": ""}, 1, dto.MetricType_GAUGE},
		{MetricDeviceInfo, map[string]string{"device": "fobgw0", "public_key": "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="}, 1, dto.MetricType_GAUGE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := series(t, fams, tc.name, tc.labels); got != tc.want {
				t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
			}
			if typ := fams[tc.name].GetType(); typ != tc.typ {
				t.Errorf("%s is a %v, want a %v", tc.name, typ, tc.typ)
			}
		})
	}
	if strings.Contains(text, rfcPrivate) || strings.Contains(text, psk) {
		t.Errorf("the exposition holds a secret:\n%s", text)
	}
}

// TestCollectorErrors: a failing read and a text that does not parse fail
// the scrape with their error, which does not quote a secret.
func TestCollectorErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		get  func() (string, error)
		want string
	}{
		{"read fails", func() (string, error) { return "", errors.New("device closed") }, "device closed"},
		{"bad text", func() (string, error) { return "private_key=" + rfcPrivate[:60] + "\n", nil }, "(a secret, not shown)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := scrape(t, NewCollector("wg0", tc.get))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("scrape error %v, want one saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), rfcPrivate[:60]) {
				t.Errorf("the error quotes the private key: %v", err)
			}
		})
	}
}

func ExampleCollector() {
	text := "listen_port=51820\npublic_key=" + peerA + "\nrx_bytes=10\ntx_bytes=20\n"
	c := NewCollector("wg0", func() (string, error) { return text, nil })
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == MetricPeerReceiveBytes {
				fmt.Println(mf.GetName(), m.GetCounter().GetValue())
			}
		}
	}
	// Output: wireguard_peer_receive_bytes_total 10
}
