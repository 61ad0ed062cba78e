package wgexport

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// The series of mdlayher/wireguard_exporter (v0.2 and later), whose names
// the WireGuard dashboards use (Grafana's "WireGuard" dashboard 12177, for
// one): the same names, types and labels. Per-peer series are labelled with
// the device and the peer's public key in base64; wireguard_device_info's
// public_key is the device's own. MindFlavor/prometheus_wireguard_exporter
// uses other names (wireguard_sent_bytes_total, ...) and labels
// (interface, ...): its dashboards are not served.
const (
	MetricDeviceInfo        = "wireguard_device_info"
	MetricPeerInfo          = "wireguard_peer_info"
	MetricPeerReceiveBytes  = "wireguard_peer_receive_bytes_total"
	MetricPeerTransmitBytes = "wireguard_peer_transmit_bytes_total"
	MetricPeerLastHandshake = "wireguard_peer_last_handshake_seconds"
)

// Collector is a prometheus.Collector of one WireGuard device's state.
type Collector struct {
	device string
	get    func() (string, error)

	deviceInfo, peerInfo, rx, tx, handshake *prometheus.Desc
}

// NewCollector returns a collector of the device called device (the
// interface name, the device label) whose state get returns as the UAPI get
// operation's text: wireguard-go's (*device.Device).IpcGet. get is called
// once a scrape. When get fails or its text does not parse, the scrape
// reports the error (which never quotes a secret) and no series.
func NewCollector(device string, get func() (string, error)) *Collector {
	labels := []string{"device", "public_key"}
	return &Collector{
		device: device,
		get:    get,
		deviceInfo: prometheus.NewDesc(MetricDeviceInfo,
			"Metadata about a device.", labels, nil),
		peerInfo: prometheus.NewDesc(MetricPeerInfo,
			"Metadata about a peer. The public_key label on peer metrics refers to the peer's public key; not the device's public key.",
			append(labels, "allowed_ips", "endpoint", "name"), nil),
		rx: prometheus.NewDesc(MetricPeerReceiveBytes,
			"Number of bytes received from a given peer.", labels, nil),
		tx: prometheus.NewDesc(MetricPeerTransmitBytes,
			"Number of bytes transmitted to a given peer.", labels, nil),
		handshake: prometheus.NewDesc(MetricPeerLastHandshake,
			"UNIX timestamp for the last handshake with a given peer.", labels, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.deviceInfo, c.peerInfo, c.rx, c.tx, c.handshake} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	text, err := c.get()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.deviceInfo, err)
		return
	}
	d, err := Parse(text)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.deviceInfo, err)
		return
	}
	devKey := ""
	if d.HasPublicKey {
		devKey = d.PublicKey.String()
	}
	ch <- prometheus.MustNewConstMetric(c.deviceInfo, prometheus.GaugeValue, 1, c.device, devKey)
	for _, p := range d.Peers {
		pub := p.PublicKey.String()
		ep := ""
		if p.Endpoint.IsValid() {
			ep = p.Endpoint.String()
		}
		ch <- prometheus.MustNewConstMetric(c.peerInfo, prometheus.GaugeValue, 1, c.device, pub, allowedIPs(p.AllowedIPs), ep, "")
		ch <- prometheus.MustNewConstMetric(c.rx, prometheus.CounterValue, float64(p.RxBytes), c.device, pub)
		ch <- prometheus.MustNewConstMetric(c.tx, prometheus.CounterValue, float64(p.TxBytes), c.device, pub)
		var hs float64 // 0: never, as the exporter says it
		if !p.LastHandshake.IsZero() {
			hs = float64(p.LastHandshake.Unix())
		}
		ch <- prometheus.MustNewConstMetric(c.handshake, prometheus.GaugeValue, hs, c.device, pub)
	}
}

// allowedIPs is the allowed_ips label: the prefixes comma-separated, IPv4
// first, then by prefix length and address, so that the label does not
// change with the order the device lists them in.
func allowedIPs(ps []netip.Prefix) string {
	s := slices.Clone(ps)
	slices.SortFunc(s, func(a, b netip.Prefix) int {
		return cmp.Or(
			cmp.Compare(a.Addr().BitLen(), b.Addr().BitLen()),
			cmp.Compare(a.Bits(), b.Bits()),
			a.Addr().Compare(b.Addr()))
	})
	var b strings.Builder
	for i, p := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.String())
	}
	return b.String()
}
