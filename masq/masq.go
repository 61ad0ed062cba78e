// Package masq installs the kernel NAT behind `Masquerade = on`: the LAN's
// packets leave through the tunnel with the tunnel's address as source, so
// that a home peer allowing only the tunnel address (10.1.200.2/32) passes
// them. It keeps one nftables table of fobgw's own, spoken to over netlink
// (github.com/google/nftables), and knows nothing of WireGuard or routing.
//
//	table inet fobgw {
//		chain postrouting {
//			type nat hook postrouting priority srcnat; policy accept;
//			oifname "fobgw0" ip saddr 192.168.86.0/24 masquerade
//		}
//	}
//
// Masquerade rather than snat to a fixed address: the kernel takes the
// tunnel's own address of the packet's family, so nothing has to change when
// that address does. Needs Linux 5.2 or later (NAT in an inet table) with
// nf_tables and its NAT and masquerade support (nft_chain_nat, nft_masq).
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

// Config says what to translate.
type Config struct {
	Enabled         bool           // Masquerade = on; off means no table at all
	LAN             []netip.Prefix // the LAN's IPv4 and IPv6 prefixes; host bits are ignored
	TunnelInterface string         // the interface the LAN's packets leave by, e.g. fobgw0
}

// validate returns cfg with the prefixes masked and duplicates dropped.
func (cfg Config) validate() (Config, error) {
	if !cfg.Enabled {
		return Config{}, nil
	}
	name := cfg.TunnelInterface
	// IFNAMSIZ is 16 with the terminating NUL.
	if name == "" || len(name) > 15 || strings.ContainsAny(name, "/ \t\n\x00") {
		return Config{}, fmt.Errorf("%w: tunnel interface %q: want an interface name of 1 to 15 characters", ErrConfig, name)
	}
	if len(cfg.LAN) == 0 {
		return Config{}, fmt.Errorf("%w: Masquerade = on needs the LAN's prefix (LAN = 192.168.86.0/24)", ErrConfig)
	}
	out := Config{Enabled: true, TunnelInterface: name}
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
	return out, nil
}

// ruleText is one rule in nft(8) syntax, as String prints it and as its
// comment in the kernel says it.
func ruleText(ifname string, p netip.Prefix) string {
	fam := "ip"
	if p.Addr().Is6() {
		fam = "ip6"
	}
	return fmt.Sprintf("oifname %q %s saddr %s masquerade", ifname, fam, p)
}

// describe is the desired state in nft(8) syntax (what `nft list table inet
// fobgw` shows once it is installed, comments aside), or a line saying that
// there is none.
func describe(cfg Config) string {
	if !cfg.Enabled {
		return fmt.Sprintf("masquerade off: no table inet %s\n", TableName)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n\tchain %s {\n", TableName, ChainName)
	b.WriteString("\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	for _, p := range cfg.LAN {
		fmt.Fprintf(&b, "\t\t%s\n", ruleText(cfg.TunnelInterface, p))
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}
