// Package masq owns fobgw's nftables table, table inet fobgw, spoken to over
// netlink (github.com/google/nftables). It knows nothing of WireGuard or
// routing tables, and holds two mechanisms:
//
// Masquerade (Config.Enabled, `Masquerade = on`): the LAN's packets leave
// through the tunnel with the tunnel's address as source, so that a home peer
// allowing only the tunnel address (10.1.200.2/32) passes them.
//
//	table inet fobgw {
//		chain postrouting {
//			type nat hook postrouting priority srcnat; policy accept;
//			oifname "fobgw0" ip saddr 192.168.86.0/24 masquerade
//		}
//	}
//
// Local breakout (Config.Breakout): traffic that leaves through the local ISP
// on purpose. Packets coming in on the LAN interface are marked with [Mark]
// when they come from a bypassed device (its address, or its MAC, so that a
// new DHCP lease changes nothing) or when their flow began towards an
// address in the local sets, which the DNS forwarder fills with the answers
// for LocalDomains before the client sees them ([LocalSet]). A policy rule
// sends marked packets to the main table, past the LAN's kill switch, and one
// masquerade rule gives them the WAN's address: a board has no other NAT.
// A captive-portal window is the same thing for one device with an end
// ([NAT.AllowDevice]). See [NAT.String] for the whole table.
//
// The way out is decided once per flow, at its first packet (while its
// conntrack entry is unconfirmed: "ct state new" would still hold for a UDP
// flow without replies, or a TCP SYN sent again), and kept in the flow's ct
// mark, which every later packet copies. A flow that began through the
// tunnel is never moved to the WAN half-way, where it would leave with the
// LAN's address, never translated; a flow that began direct stays direct
// when its destination times out of the set or its device's window closes
// (RevokeDevice): from then on only new flows go home.
//
// The table outlives the process, like the kill switch's routes: after a
// crash, bypassed devices and new flows to the local sets' destinations
// (until their elements time out) still leave directly, and nothing else
// does; Remove (`fobgw down`) takes it all.
//
// Masquerade rather than snat to a fixed address: the kernel takes the
// outgoing interface's own address of the packet's family, so nothing has to
// change when that address does. Needs Linux 5.2 or later (NAT in an inet
// table) with nf_tables and its NAT and masquerade support (nft_chain_nat,
// nft_masq); the breakout's per-device counters need Linux 5.11 (set element
// expressions), and a refreshed element keeps the longer timeout only from
// Linux 6.10 (element timeout update), before which it keeps the first one.
package masq

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Names of what the package installs. The table is fobgw's alone: Apply and
// Repair replace it whole and Remove deletes it whole.
const (
	TableName = "fobgw"       // family inet
	ChainName = "postrouting" // type nat hook postrouting priority srcnat
)

// ErrConfig marks an invalid Config. Fatal: the configuration must be fixed.
var ErrConfig = errors.New("invalid masquerade configuration")

// Config says what to translate and mark.
type Config struct {
	Enabled         bool           // Masquerade = on: the LAN leaves the tunnel with the tunnel's address
	LAN             []netip.Prefix // the LAN's IPv4 and IPv6 prefixes; host bits are ignored
	TunnelInterface string         // the interface the LAN's packets leave by, e.g. fobgw0
	Breakout        Breakout       // local breakout; with Enabled off too, the table holds only it
}

// installs reports whether cfg asks for a table at all.
func (cfg Config) installs() bool { return cfg.Enabled || cfg.Breakout.Enabled }

// validate returns cfg with the prefixes masked and duplicates dropped.
func (cfg Config) validate() (Config, error) {
	if !cfg.installs() {
		return Config{}, nil
	}
	name := cfg.TunnelInterface
	if err := checkIfName("tunnel interface", name); err != nil {
		return Config{}, err
	}
	if len(cfg.LAN) == 0 {
		return Config{}, fmt.Errorf("%w: Masquerade = on needs the LAN's prefix (LAN = 192.168.86.0/24)", ErrConfig)
	}
	out := Config{Enabled: cfg.Enabled, TunnelInterface: name}
	for _, p := range cfg.LAN {
		if !p.IsValid() {
			return Config{}, fmt.Errorf("%w: LAN prefix %v is not a prefix", ErrConfig, p)
		}
		p = p.Masked()
		if p.Addr().Is4In6() {
			return Config{}, fmt.Errorf("%w: LAN prefix %v: write IPv4 prefixes in dotted form", ErrConfig, p)
		}
		dup := false
		for _, q := range out.LAN {
			dup = dup || q == p
		}
		if !dup {
			out.LAN = append(out.LAN, p)
		}
	}
	var err error
	if out.Breakout, err = cfg.Breakout.validate(out.LAN); err != nil {
		return Config{}, err
	}
	if out.Breakout.Enabled && out.Breakout.LANInterface == name {
		return Config{}, fmt.Errorf("%w: the LAN interface and the tunnel are both %q", ErrConfig, name)
	}
	return out, nil
}

// checkIfName checks an interface name; IFNAMSIZ is 16 with the terminating NUL.
func checkIfName(what, name string) error {
	if name == "" || len(name) > 15 || strings.ContainsAny(name, "/ \t\n\x00") {
		return fmt.Errorf("%w: %s %q: want an interface name of 1 to 15 characters", ErrConfig, what, name)
	}
	return nil
}
