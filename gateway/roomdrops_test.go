package gateway

import (
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// TestRoomDropsMetric: the drop and wait counters of the patched wireguard-go reach /metrics.
func TestRoomDropsMetric(t *testing.T) {
	noBuffer, tooLarge := conn.DroppedForRoom()
	waits := conn.WaitsForBuffer()
	conn.CountDroppedNoBuffer(3)
	conn.CountDroppedTooLarge(2)
	conn.CountWaitedForBuffer()
	reg := prometheus.NewRegistry()
	reg.MustRegister(newRoomDropsCollector())
	want := `# HELP fobgw_wireguard_buffer_waits_total Times a wireguard-go reader found every packet buffer in use and waited for one: the traffic outran the CPU, and packets waited in the kernel's queues.
# TYPE fobgw_wireguard_buffer_waits_total counter
fobgw_wireguard_buffer_waits_total ` + strconv.FormatUint(waits+1, 10) + `
# HELP fobgw_wireguard_dropped_no_room_total Packets wireguard-go dropped for lack of room: no_buffer (pool or queue full), too_large (larger than a packet buffer).
# TYPE fobgw_wireguard_dropped_no_room_total counter
fobgw_wireguard_dropped_no_room_total{reason="no_buffer"} ` + strconv.FormatUint(noBuffer+3, 10) + `
fobgw_wireguard_dropped_no_room_total{reason="too_large"} ` + strconv.FormatUint(tooLarge+2, 10) + `
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// TestBuffersStatus: `fobgw status` shows the device's pool and the same wait and drop
// counters as /metrics.
func TestBuffersStatus(t *testing.T) {
	dev := device.NewDevice(tuntest.NewChannelTUN().TUN(), conn.NewDefaultBind(), device.NewLogger(device.LogLevelSilent, ""))
	defer dev.Close()
	tn := &tunnel{dev: dev}
	before := tn.buffers()
	conn.CountDroppedNoBuffer(5)
	conn.CountDroppedTooLarge(1)
	conn.CountWaitedForBuffer()
	conn.CountWaitedForBuffer()
	got := tn.buffers()
	want := BuffersStatus{Pool: dev.MessageBuffers(), Waits: before.Waits + 2,
		DroppedNoRoom: before.DroppedNoRoom + 5, DroppedTooLarge: before.DroppedTooLarge + 1}
	if *got != want {
		t.Errorf("buffers %+v, want %+v", *got, want)
	}
	if got.Pool < device.MinMessageBuffers || got.Pool > device.MaxMessageBuffers {
		t.Errorf("pool %d, want the device's, from %d to %d", got.Pool, device.MinMessageBuffers, device.MaxMessageBuffers)
	}
}
