package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fobgw/fobgw/health"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestStatusMetrics(t *testing.T) {
	st := &Status{TunnelUp: true, HandshakeAgeSeconds: 12, RxBytes: 100, TxBytes: 200,
		Clamp: ClampStatus{Enabled: true, ClampedOut: 3, ClampedIn: 4}, RouteRepairs: 5,
		HealerStatus: health.HealerStatus{ProbeMisses: 1, ProbeMissesTotal: 6, EndpointChanges: 2, EndpointEntrySwitches: 7},
		LANPath:      &health.LANPathStatus{OK: false, Probes: 8}}
	c := newStatusCollector(func() *Status { return st })
	want := `
# HELP fobgw_tunnel_up 1 when the last handshake is less than 180 s old.
# TYPE fobgw_tunnel_up gauge
fobgw_tunnel_up 1
# HELP fobgw_receive_bytes_total Bytes received from the peer.
# TYPE fobgw_receive_bytes_total counter
fobgw_receive_bytes_total 100
# HELP fobgw_mss_clamped_out_total SYNs from the LAN whose MSS was lowered.
# TYPE fobgw_mss_clamped_out_total counter
fobgw_mss_clamped_out_total 3
# HELP fobgw_route_repairs_total Routes, rules and sysctls repaired after drift.
# TYPE fobgw_route_repairs_total counter
fobgw_route_repairs_total 5
# HELP fobgw_endpoint_changes_total Times the peer endpoint was set to another address.
# TYPE fobgw_endpoint_changes_total counter
fobgw_endpoint_changes_total 2
# HELP fobgw_lan_path_up 1 when the last probe from the LAN address through the tunnel was answered (0 also before the first).
# TYPE fobgw_lan_path_up gauge
fobgw_lan_path_up 0
# HELP fobgw_endpoint_entry_switches_total Times the gateway went to another entry of the Endpoint list.
# TYPE fobgw_endpoint_entry_switches_total counter
fobgw_endpoint_entry_switches_total 7
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "fobgw_tunnel_up", "fobgw_receive_bytes_total",
		"fobgw_mss_clamped_out_total", "fobgw_route_repairs_total", "fobgw_endpoint_changes_total",
		"fobgw_lan_path_up", "fobgw_endpoint_entry_switches_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c); n != len(metricDefs) {
		t.Errorf("%d metrics, want %d", n, len(metricDefs))
	}
	reg, err := newRegistry(func() *Status { return st })
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"fobgw_tunnel_up", "go_goroutines", "process_open_fds"} {
		if !names[n] {
			t.Errorf("registry lacks %s", n)
		}
	}
}

// gateCollector reports one gauge; with a gate set, each Collect first says it
// has started and then waits for the gate to open.
type gateCollector struct {
	desc    *prometheus.Desc
	started chan struct{}
	gate    chan struct{}
}

func (c *gateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *gateCollector) Collect(ch chan<- prometheus.Metric) {
	if c.gate != nil {
		c.started <- struct{}{}
		<-c.gate
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1)
}

// TestMetricsListener: /metrics answers in plain text even to a client that
// accepts gzip, and serves at most metricsInFlight scrapes at once.
func TestMetricsListener(t *testing.T) {
	c := &gateCollector{desc: prometheus.NewDesc("fobgw_test_gate", "A test gauge.", nil, nil)}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	m, err := listenMetrics("127.0.0.1:0", reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	url := "http://" + m.ln.Addr().String() + "/metrics"
	// The client's own compression is off, so that it neither asks for gzip
	// by itself nor undoes it: the header below is what the server sees.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 10 * time.Second}
	scrape := func() (int, http.Header, string, error) {
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			return 0, nil, "", err
		}
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b), err
	}

	code, h, body, err := scrape()
	if err != nil || code != http.StatusOK {
		t.Fatalf("scrape: %d, %v", code, err)
	}
	if enc := h.Get("Content-Encoding"); enc != "" {
		t.Errorf("Content-Encoding %q, want none", enc)
	}
	if !strings.Contains(body, "fobgw_test_gate 1") {
		t.Errorf("body lacks the gauge:\n%s", body)
	}

	// metricsInFlight scrapes wait in Collect; one more is turned away.
	c.started, c.gate = make(chan struct{}), make(chan struct{})
	codes := make(chan int, metricsInFlight)
	for range metricsInFlight {
		go func() {
			code, _, _, err := scrape()
			if err != nil {
				t.Errorf("held scrape: %v", err)
			}
			codes <- code
		}()
	}
	for range metricsInFlight {
		<-c.started
	}
	if code, _, body, err := scrape(); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("scrape beyond %d at once: %d %q, %v; want 503", metricsInFlight, code, body, err)
	}
	close(c.gate)
	for range metricsInFlight {
		if code := <-codes; code != http.StatusOK {
			t.Errorf("held scrape: %d, want 200", code)
		}
	}
}
