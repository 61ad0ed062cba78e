package gateway

import (
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.zx2c4.com/wireguard/conn"
)

// TestRoomDropsMetric: the drop counters of the patched wireguard-go reach /metrics.
func TestRoomDropsMetric(t *testing.T) {
	noBuffer, tooLarge := conn.DroppedForRoom()
	conn.CountDroppedNoBuffer(3)
	conn.CountDroppedTooLarge(2)
	reg := prometheus.NewRegistry()
	reg.MustRegister(newRoomDropsCollector())
	want := `# HELP fobgw_wireguard_dropped_no_room_total Packets wireguard-go dropped for lack of room: no_buffer (pool or queue full), too_large (larger than a packet buffer).
# TYPE fobgw_wireguard_dropped_no_room_total counter
fobgw_wireguard_dropped_no_room_total{reason="no_buffer"} ` + strconv.FormatUint(noBuffer+3, 10) + `
fobgw_wireguard_dropped_no_room_total{reason="too_large"} ` + strconv.FormatUint(tooLarge+2, 10) + `
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
