package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/fobgw/fobgw/internal/buildinfo"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// statusCollector exports a Status as fobgw_* metrics.
type statusCollector struct {
	status func() *Status
	descs  []*prometheus.Desc
}

type metricDef struct {
	name, help string
	counter    bool
	value      func(*Status) float64
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var metricDefs = append([]metricDef{
	{"fobgw_tunnel_up", "1 when the last handshake is less than 180 s old.", false, func(s *Status) float64 { return b2f(s.TunnelUp) }},
	{"fobgw_last_handshake_timestamp_seconds", "Unix time of the last handshake (0: never).", false, func(s *Status) float64 {
		if s.LastHandshake.IsZero() {
			return 0
		}
		return float64(s.LastHandshake.UnixNano()) / 1e9
	}},
	{"fobgw_handshake_age_seconds", "Age of the last handshake (-1: never).", false, func(s *Status) float64 { return s.HandshakeAgeSeconds }},
	{"fobgw_receive_bytes_total", "Bytes received from the peer.", true, func(s *Status) float64 { return float64(s.RxBytes) }},
	{"fobgw_transmit_bytes_total", "Bytes sent to the peer.", true, func(s *Status) float64 { return float64(s.TxBytes) }},
	{"fobgw_mss_clamped_out_total", "SYNs from the LAN whose MSS was lowered.", true, func(s *Status) float64 { return float64(s.Clamp.ClampedOut) }},
	{"fobgw_mss_clamped_in_total", "SYN-ACKs from the tunnel whose MSS was lowered.", true, func(s *Status) float64 { return float64(s.Clamp.ClampedIn) }},
	{"fobgw_mss_malformed_total", "Malformed TCP SYNs passed through unchanged.", true, func(s *Status) float64 { return float64(s.Clamp.Malformed) }},
	{"fobgw_mtu_ceiling_bytes", "The configured MTU, the ceiling of path MTU discovery.", false, func(s *Status) float64 { return mtuField(s, func(m *MTUStatus) int { return m.Ceiling }) }},
	{"fobgw_mtu_path_bytes", "The largest inner packet seen to cross the tunnel both ways, up to the ceiling (0: not measured).", false, func(s *Status) float64 { return mtuField(s, func(m *MTUStatus) int { return m.Path }) }},
	{"fobgw_mtu_effective_bytes", "The tunnel's MTU: min(ceiling, path).", false, func(s *Status) float64 { return mtuField(s, func(m *MTUStatus) int { return m.Effective }) }},
	{"fobgw_route_repairs_total", "Routes, rules and sysctls repaired after drift.", true, func(s *Status) float64 { return float64(s.RouteRepairs) }},
	{"fobgw_probe_misses", "Consecutive health probes without an answer.", false, func(s *Status) float64 { return float64(s.ProbeMisses) }},
	{"fobgw_probe_misses_total", "Health probes without an answer.", true, func(s *Status) float64 { return float64(s.ProbeMissesTotal) }},
	{"fobgw_probes_total", "Health probes sent through the tunnel.", true, func(s *Status) float64 { return float64(s.Probes) }},
	{"fobgw_endpoint_changes_total", "Times the peer endpoint was set to another address.", true, func(s *Status) float64 { return float64(s.EndpointChanges) }},
	{"fobgw_endpoint_roam_resets_total", "Times the peer had roamed back to an endpoint the gateway left, while probes went unanswered, and was set back.", true, func(s *Status) float64 { return float64(s.EndpointRoamResets) }},
	{"fobgw_handshake_kicks_total", "Handshakes started at once after a health probe found the peer silent (at most one per 5 s).", true, func(s *Status) float64 { return float64(s.HandshakeKicks) }},
	{"fobgw_endpoint_resolve_failures_total", "Failed resolutions of the endpoint name.", true, func(s *Status) float64 { return float64(s.ResolveFailures) }},

	// Health beyond the tunnel probe: the LAN path, the endpoint list, the clock.
	{"fobgw_lan_path_up", "1 when the last probe from the LAN address through the tunnel was answered (0 also before the first).", false, func(s *Status) float64 { return b2f(s.LANPath != nil && s.LANPath.OK) }},
	{"fobgw_lan_path_probes_total", "Probes from the LAN address through the tunnel.", true, func(s *Status) float64 {
		if s.LANPath == nil {
			return 0
		}
		return float64(s.LANPath.Probes)
	}},
	{"fobgw_endpoint_entry_switches_total", "Times the gateway went to another entry of the Endpoint list.", true, func(s *Status) float64 { return float64(s.EndpointEntrySwitches) }},
	{"fobgw_endpoint_entry_trials_total", "Tries of the Endpoint list's first entry while on another.", true, func(s *Status) float64 { return float64(s.EndpointEntryTrials) }},
	// The local breakout (the forwarder counts its answers: fobgw_dns_local_answers_total).
	{"fobgw_bypass_devices_seen", "Bypass devices (and open windows) that sent packets or hold a LAN address now.", false, bypassSeen},
	{"fobgw_bypass_bytes_total", "Bytes of bypassed devices, counted by the kernel while they were bypassed.", true, bypassBytes},
	{"fobgw_local_set_addresses", "Addresses in the local set (LocalDomains answers) now.", false, localSetSize},
	{"fobgw_clock_ok", "1 when the clock is synchronised and not before the build time.", false, func(s *Status) float64 { return b2f(s.Clock == nil || s.Clock.OK()) }},
}, portalMetrics...)

func mtuField(s *Status, f func(*MTUStatus) int) float64 {
	if s.MTU == nil {
		return 0
	}
	return float64(f(s.MTU))
}

func newStatusCollector(status func() *Status) *statusCollector {
	c := &statusCollector{status: status}
	for _, d := range metricDefs {
		c.descs = append(c.descs, prometheus.NewDesc(d.name, d.help, nil, nil))
	}
	return c
}

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.status()
	for i, d := range metricDefs {
		t := prometheus.GaugeValue
		if d.counter {
			t = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(c.descs[i], t, d.value(s))
	}
}

// metricsServer serves the registry on /metrics.
type metricsServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

func newRegistry(status func() *Status, extra ...prometheus.Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	cs := append([]prometheus.Collector{
		newStatusCollector(status),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildinfo.Collector(buildinfo.Read()),
	}, extra...)
	for _, c := range cs {
		if c == nil {
			continue
		}
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return reg, nil
}

// metricsInFlight is how many scrapes /metrics serves at once.
const metricsInFlight = 2

func listenMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener on %s (MetricsListen; empty disables it): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// No gzip: a scrape is about 20 kB of text on the LAN or loopback, and
		// the compressor a gzip scrape takes is about 0.8 MB, allocated again
		// after each collection has emptied its pool. In the lab, under 8
		// streams each way and a scrape every half second, the gateway's peak
		// RSS was 25.2-26.1 MiB with it and 23.2-23.7 MiB without.
		DisableCompression: true,
		// A scrape allocates some 400 kB; more than this many at once are
		// answered 503, so that a busy client cannot add them up.
		MaxRequestsInFlight: metricsInFlight,
	}))
	m := &metricsServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "addr", addr, "err", err)
		}
	}()
	return m, nil
}

func (m *metricsServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	m.srv.Shutdown(ctx)
	<-m.done
}
