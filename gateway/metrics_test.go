package gateway

import (
	"strings"
	"testing"

	"github.com/fobgw/fobgw/health"
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
