package gateway

import (
	"net"
	"net/netip"

	"github.com/fobgw/fobgw/config"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// resolvConfServers returns a function that reads resolv.conf's nameservers
// for the gateway's own lookups, at each call: one inside HomeNetworks (or
// at DNSUpstream's address) is taken when the kernel reaches it directly on
// a link that is not the tunnel, at that moment: it is on a local network
// that uses home's addresses (the router installs no home route that would
// win there), not at home.
func resolvConfServers(cfg *config.Config) func() ([]netip.AddrPort, error) {
	return func() ([]netip.AddrPort, error) {
		return cfg.ResolvConfServers(func(a netip.Addr) bool { return onLinkNotTunnel(a, cfg.Name) })
	}
}

// onLinkNotTunnel reports whether the kernel routes a directly onto a link
// other than the tunnel's (no gateway, not unreachable).
func onLinkNotTunnel(a netip.Addr, tunnel string) bool {
	rs, err := netlink.RouteGet(a.AsSlice())
	if err != nil || len(rs) == 0 {
		return false
	}
	r := rs[0]
	if r.Gw != nil || r.Type != unix.RTN_UNICAST || r.LinkIndex == 0 {
		return false
	}
	if tun, err := net.InterfaceByName(tunnel); err == nil && tun.Index == r.LinkIndex {
		return false
	}
	return true
}
