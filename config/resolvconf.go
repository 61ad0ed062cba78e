package config

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// The nameservers of resolv.conf, used for the Endpoint's name when
// Resolver is not set.

// ResolvConfPath is the resolv.conf used when Resolver is not set.
func (c *Config) ResolvConfPath() string {
	if c.ResolvConf != "" {
		return c.ResolvConf
	}
	return DefaultResolvConf
}

// ResolvConfServers returns the nameservers of the resolv.conf that
// resolverProblem does not refuse; the caller reads it at each resolution.
// A nameserver inside HomeNetworks (DNSUpstream too) for which onLink (if not
// nil) reports true is accepted: it is on a network the gateway is attached
// to, which uses home's addresses (the hotel's 192.168.1.1 where home is
// 192.168.1.0/24), and the gateway reaches it without the tunnel.
func (c *Config) ResolvConfServers(onLink func(netip.Addr) bool) ([]netip.AddrPort, error) {
	path := c.ResolvConfPath()
	all, err := readResolvConf(path)
	if err != nil {
		return nil, err
	}
	var out []netip.AddrPort
	var why []string
	for _, r := range all {
		if w := c.resolverProblemExcept(r.Addr(), onLink != nil && onLink(r.Addr())); w != "" {
			why = append(why, w)
			continue
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s lists no nameserver fobgw may use (%s): set Resolver = <the local ISP's DNS server> in [Gateway]", path, strings.Join(why, "; "))
	}
	return out, nil
}

// readResolvConf returns the nameservers listed in a resolv.conf file
// (resolv.conf(5), read by miekg/dns), on port 53; addresses with a zone are
// left out.
func readResolvConf(path string) ([]netip.AddrPort, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var out []netip.AddrPort
	for _, s := range cc.Servers {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			continue
		}
		out = append(out, netip.AddrPortFrom(a.Unmap(), dnsPort))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s lists no usable nameserver (yet: is the WAN's DHCP done?)", path)
	}
	return out, nil
}
