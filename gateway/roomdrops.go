package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/conn"
)

// roomDropsCollector exports the packets wireguard-go dropped for lack of room (with no free
// queue slot or packet buffer where nothing can wait for one, or too large for their buffer) and
// the times a reader waited for a free packet buffer. The counters are process-wide (one device
// a process).
type roomDropsCollector struct{ drops, waits *prometheus.Desc }

func newRoomDropsCollector() *roomDropsCollector {
	return &roomDropsCollector{
		drops: prometheus.NewDesc("fobgw_wireguard_dropped_no_room_total",
			"Packets wireguard-go dropped for lack of room: no_buffer (pool or queue full), too_large (larger than a packet buffer).",
			[]string{"reason"}, nil),
		waits: prometheus.NewDesc("fobgw_wireguard_buffer_waits_total",
			"Times a wireguard-go reader found every packet buffer in use and waited for one: the traffic outran the CPU, and packets waited in the kernel's queues.",
			nil, nil),
	}
}

func (c *roomDropsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.drops; ch <- c.waits }

func (c *roomDropsCollector) Collect(ch chan<- prometheus.Metric) {
	noBuffer, tooLarge := conn.DroppedForRoom()
	ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(noBuffer), "no_buffer")
	ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(tooLarge), "too_large")
	ch <- prometheus.MustNewConstMetric(c.waits, prometheus.CounterValue, float64(conn.WaitsForBuffer()))
}
