package gateway

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/fobgw/fobgw/config"
)

// HomeConfig formats.
const (
	FormatRouterOS = "routeros"
	FormatWGQuick  = "wg-quick"
)

// HomeConfig writes the home router's (BEG's) side of the tunnel for this
// FOB in format (FormatRouterOS or FormatWGQuick): the FOB as a peer with
// its public key, its tunnel address and its LAN as allowed addresses, the
// route back to the LAN, and the listen port. The RouterOS output first
// removes a peer with the FOB's public key (the story's BEG already has one,
// allowing only the tunnel address), so pasting it twice leaves one peer.
// The private key is read from the key file, never created.
func HomeConfig(cfg *config.Config, format string, w io.Writer) error {
	if format != FormatRouterOS && format != FormatWGQuick {
		return fmt.Errorf("unknown format %q: use -format routeros or -format wg-quick", format)
	}
	priv, _, err := cfg.ReadPrivateKey(false)
	if err != nil {
		return err
	}
	pub := priv.PublicKey()
	var allowed []string
	for _, a := range cfg.Address {
		allowed = append(allowed, netip.PrefixFrom(a.Addr(), a.Addr().BitLen()).String())
	}
	for _, l := range cfg.LAN {
		allowed = append(allowed, l.String())
	}
	ports := endpointPorts(cfg)
	port := ports[0]
	var b strings.Builder
	switch format {
	case FormatRouterOS:
		fmt.Fprintf(&b, "# Home (BEG) side for the fobgw FOB %q: paste into the home MikroTik's terminal.\n", cfg.Name)
		writePorts(&b, ports)
		fmt.Fprintf(&b, "# If the WireGuard interface does not exist yet (a fresh setup):\n")
		fmt.Fprintf(&b, "#   /interface wireguard add listen-port=%d mtu=%d name=wireguard1\n", port, cfg.MTUCeiling())
		fmt.Fprintf(&b, "#   /ip address add address=%s interface=wireguard1\n", homeAddrHint(cfg))
		fmt.Fprintf(&b, "#   /ip firewall filter add action=accept chain=input comment=\"Wireguard\" dst-port=%d protocol=udp\n", port)
		fmt.Fprintf(&b, "#   then put its public key (/interface wireguard print) into PublicKey of [Peer] in the FOB's config.\n")
		fmt.Fprintf(&b, "# An existing peer for this FOB (e.g. one allowing only %s) is replaced:\n", allowed[0])
		fmt.Fprintf(&b, "/interface wireguard peers\n")
		fmt.Fprintf(&b, "remove [find public-key=\"%s\"]\n", pub)
		fmt.Fprintf(&b, "add allowed-address=%s comment=\"FOB %s\" interface=wireguard1 \\\n", strings.Join(allowed, ","), cfg.Name)
		if cfg.PresharedKey != nil {
			fmt.Fprintf(&b, "    preshared-key=\"%s\" \\\n", cfg.PresharedKey)
		}
		fmt.Fprintf(&b, "    public-key=\"%s\"\n", pub)
		for _, l := range cfg.LAN {
			cmd := "/ip route"
			if l.Addr().Is6() {
				cmd = "/ipv6 route"
			}
			fmt.Fprintf(&b, "%s add dst-address=%s gateway=wireguard1 comment=\"FOB %s LAN via fobgw\"\n", cmd, l, cfg.Name)
		}
		for _, p := range ports[1:] {
			fmt.Fprintf(&b, "# UDP %d, another entry of the FOB's Endpoint list, to the WireGuard port:\n", p)
			fmt.Fprintf(&b, "/ip firewall filter add action=accept chain=input comment=\"Wireguard for FOB %s\" dst-port=%d protocol=udp\n", cfg.Name, p)
			fmt.Fprintf(&b, "/ip firewall nat add action=redirect chain=dstnat comment=\"Wireguard for FOB %s\" dst-port=%d protocol=udp to-ports=%d\n", cfg.Name, p, port)
		}
	case FormatWGQuick:
		fmt.Fprintf(&b, "# Home (BEG) side for the fobgw FOB %q, wg-quick format (e.g. /etc/wireguard/wg0.conf).\n", cfg.Name)
		writePorts(&b, ports)
		for _, p := range ports[1:] {
			fmt.Fprintf(&b, "# UDP %d to the ListenPort, e.g. PostUp = iptables -t nat -A PREROUTING -i eth0 -p udp --dport %d -j REDIRECT --to-ports %d\n", p, p, port)
		}
		fmt.Fprintf(&b, "[Interface]\n")
		fmt.Fprintf(&b, "# PrivateKey = <the home router's private key; its public key goes into PublicKey of [Peer] in the FOB's config>\n")
		fmt.Fprintf(&b, "# Address = <the home router's tunnel address, e.g. %s>\n", homeAddrHint(cfg))
		fmt.Fprintf(&b, "# The home router forwards the FOB LAN's packets: it needs net.ipv4.ip_forward=1\n")
		fmt.Fprintf(&b, "# (e.g. PostUp = sysctl -w net.ipv4.ip_forward=1, or in /etc/sysctl.d/) and the masquerade below.\n")
		fmt.Fprintf(&b, "ListenPort = %d\n", port)
		fmt.Fprintf(&b, "MTU = %d\n", cfg.MTUCeiling())
		fmt.Fprintf(&b, "\n[Peer]\n")
		fmt.Fprintf(&b, "# FOB %s; wg-quick adds the route back to the LAN from AllowedIPs\n", cfg.Name)
		fmt.Fprintf(&b, "PublicKey = %s\n", pub)
		if cfg.PresharedKey != nil {
			fmt.Fprintf(&b, "PresharedKey = %s\n", cfg.PresharedKey)
		}
		fmt.Fprintf(&b, "AllowedIPs = %s\n", strings.Join(allowed, ", "))
	}
	fmt.Fprintf(&b, "# The FOB LAN (%s) reaches the internet through home's masquerade (srcnat action=masquerade\n", join(cfg.LAN, ","))
	fmt.Fprintf(&b, "# out of the WAN; with wg-quick e.g. PostUp = iptables -t nat -A POSTROUTING -s %s -o eth0 -j MASQUERADE),\n", join(cfg.LAN, ","))
	fmt.Fprintf(&b, "# and a Pi-hole at %v must answer queries from other subnets: Settings > DNS > \"Permit all origins\".\n", cfg.DNSUpstream.Addr())
	_, err = io.WriteString(w, b.String())
	return err
}

// endpointPorts are the distinct ports of the Endpoint list, in its order.
func endpointPorts(cfg *config.Config) []uint16 {
	var ports []uint16
	for _, e := range cfg.EndpointList() {
		if !slices.Contains(ports, e.Port) {
			ports = append(ports, e.Port)
		}
	}
	return ports
}

// writePorts says which UDP ports the home side must open.
func writePorts(b *strings.Builder, ports []uint16) {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(int(p))
	}
	if len(ports) == 1 {
		fmt.Fprintf(b, "# The home side must answer WireGuard on UDP port %s (the FOB's Endpoint).\n", s[0])
		return
	}
	fmt.Fprintf(b, "# The home side must answer WireGuard on UDP ports %s (the FOB's Endpoint list):\n", strings.Join(s, ", "))
	fmt.Fprintf(b, "# it listens on %s and redirects the others to it (below).\n", s[0])
}

// homeAddrHint guesses the home router's tunnel address for the comment:
// the first host of the FOB's tunnel network.
func homeAddrHint(cfg *config.Config) string {
	if len(cfg.Address) == 0 {
		return "10.1.200.1/24"
	}
	a := cfg.Address[0]
	first := a.Masked().Addr().Next()
	if first == a.Addr() {
		first = first.Next()
	}
	return netip.PrefixFrom(first, a.Bits()).String()
}
