package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/conn"
)

// roomDropsCollector exports the packets wireguard-go dropped for lack of room: with no free
// packet buffer or queue slot, or too large for their buffer. The counters are process-wide
// (one device a process).
type roomDropsCollector struct{ desc *prometheus.Desc }

func newRoomDropsCollector() *roomDropsCollector {
	return &roomDropsCollector{desc: prometheus.NewDesc("fobgw_wireguard_dropped_no_room_total",
		"Packets wireguard-go dropped for lack of room: no_buffer (pool or queue full), too_large (larger than a packet buffer).",
		[]string{"reason"}, nil)}
}

func (c *roomDropsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *roomDropsCollector) Collect(ch chan<- prometheus.Metric) {
	noBuffer, tooLarge := conn.DroppedForRoom()
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(noBuffer), "no_buffer")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(tooLarge), "too_large")
}
