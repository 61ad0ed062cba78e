package selfbench

// Figure is a published WireGuard throughput of a router's chip.
type Figure struct {
	Device string  `json:"device"`
	SoC    string  `json:"soc"`
	Mbps   float64 `json:"mbit_per_s"`
	Method string  `json:"method"`
	Source string  `json:"source"`
}

// Published are the figures for the chips of the MikroTik hAP lite (QCA9533) and hAP ac
// (QCA9558) that fobgw replaces: MikroTik publishes no WireGuard figure for either model, so
// these come from wg-bench's table, measured on other routers built on the same chips.
var Published = []Figure{
	{
		Device: "TP-Link WR841N v9 (the hAP lite's SoC)", SoC: "QCA9533, 1 core, 650 MHz", Mbps: 19.2,
		Method: "both tunnel ends on the device, kernel WireGuard under OpenWrt, iperf3 TCP",
		Source: "github.com/cyyself/wg-bench (README)",
	},
	{
		Device: "TP-Link Archer C7 v2 (the hAP ac's SoC)", SoC: "QCA9558, 1 core, 720 MHz", Mbps: 35.2,
		Method: "both tunnel ends on the device, kernel WireGuard under OpenWrt, iperf3 TCP",
		Source: "github.com/cyyself/wg-bench (README)",
	},
}

// Comparable says what a figure of Run compares with, and what not.
const Comparable = `Comparable: one stream each way against the published figures above. Both put
both tunnel ends on one device's cores, so every packet is sealed and opened on the same CPU.
Not comparable: they run kernel WireGuard and the kernel's TCP (iperf3); this runs fobgw's
userspace WireGuard and no TCP stack (generated segments), so it costs the tunnel without a
TCP's share. A gateway forwarding a LAN carries one tunnel end plus the kernel's routing and
TUN for each packet: its rate differs from both; CPU per Gbit here is both ends'.`
