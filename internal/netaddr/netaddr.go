// Package netaddr converts between net/netip prefixes and the *net.IPNet
// that netlink takes and returns: the one prefix helper of gateway and
// policyroute.
package netaddr

import (
	"net"
	"net/netip"
)

// IPNet returns p as a *net.IPNet, its address as written (host bits kept).
func IPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Prefix returns n as a netip.Prefix, an IPv4-mapped address unmapped (a
// /120 mask becomes /24); the zero Prefix when n's address is not 4 or 16
// bytes long.
func Prefix(n *net.IPNet) netip.Prefix {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}
	}
	ones, bits := n.Mask.Size()
	if a.Is4In6() {
		a = a.Unmap()
		if bits == 128 {
			ones -= 96
		}
	}
	return netip.PrefixFrom(a, ones)
}
