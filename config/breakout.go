package config

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// The local breakout's keys: Bypass (devices by address or MAC) and
// LocalDomains (names answered by Resolver, whose addresses leave through
// the local ISP).

// parseBypass parses "192.168.86.50, 02:11:22:33:44:55": addresses and
// 6-byte unicast MAC addresses; duplicates are dropped.
func parseBypass(v string) ([]netip.Addr, []net.HardwareAddr, string) {
	var addrs []netip.Addr
	var macs []net.HardwareAddr
	for _, f := range splitList(v) {
		if a, err := netip.ParseAddr(f); err == nil {
			if a.Zone() != "" {
				return nil, nil, fmt.Sprintf("%q has a zone", f)
			}
			if a = a.Unmap(); !slices.Contains(addrs, a) {
				addrs = append(addrs, a)
			}
			continue
		}
		m, err := net.ParseMAC(f)
		if err != nil {
			return nil, nil, fmt.Sprintf("%q is neither an address nor a MAC address", f)
		}
		if len(m) != 6 {
			return nil, nil, fmt.Sprintf("%q is a %d-byte hardware address, not an Ethernet MAC", f, len(m))
		}
		if m[0]&1 != 0 || string(m) == "\x00\x00\x00\x00\x00\x00" {
			return nil, nil, fmt.Sprintf("%q is not a device's (unicast) MAC address", f)
		}
		if !slices.ContainsFunc(macs, func(x net.HardwareAddr) bool { return string(x) == string(m) }) {
			macs = append(macs, m)
		}
	}
	return addrs, macs, ""
}

// parseDomains parses "example.de, bank.example" into lower-case names
// without a final dot; duplicates are dropped.
func parseDomains(v string) ([]string, string) {
	var out []string
	for _, f := range splitList(v) {
		name, msg := checkDomain(f)
		if msg != "" {
			return nil, msg
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, ""
}

// checkDomain returns s as a lower-case domain name without a final dot,
// or why it is none: labels of 1 to 63 letters, digits, '-' or '_' (no '-'
// at either end), at most 253 characters, not the root, not an address.
func checkDomain(s string) (string, string) {
	name := strings.TrimSuffix(strings.ToLower(s), ".")
	if name == "" {
		return "", fmt.Sprintf("%q is the root, not a domain name (every name would leave through the local ISP)", s)
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return "", fmt.Sprintf("%q is an address, not a domain name (a device is bypassed with Bypass)", s)
	}
	if len(name) > 253 {
		return "", fmt.Sprintf("%q is longer than a domain name can be (253 characters)", s)
	}
	for _, l := range strings.Split(name, ".") {
		if l == "" || len(l) > 63 {
			return "", fmt.Sprintf("%q is not a domain name: labels of 1 to 63 characters, separated by single dots", s)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Sprintf("%q is not a domain name: a label cannot begin or end with '-'", s)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Sprintf("%q is not a domain name: letters, digits, '-' and '_' only", s)
			}
		}
	}
	return name, ""
}

// under reports whether name is domain or a name below it.
func under(name, domain string) bool {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	return name == domain || strings.HasSuffix(name, "."+domain)
}

// breakout checks the breakout's keys against the others: Bypass addresses
// inside LAN and not the gateway's own, no LocalDomains name at or above
// the Endpoint's (the gateway resolves it through Resolver already).
func (v *validator) breakout() {
	c := v.c
	for _, a := range c.BypassAddrs {
		switch {
		case !prefixesContain(c.LAN, a):
			v.errorf(v.line("gateway", "Bypass"), "Bypass", fmt.Sprintf("addresses of devices inside LAN %s, or their MAC addresses", join(c.LAN, ",")),
				"%v is not inside LAN", a)
		case c.DNSListen.IsValid() && a == c.DNSListen.Addr():
			v.errorf(v.line("gateway", "Bypass"), "Bypass", "addresses of LAN devices, not the gateway's",
				"%v is the gateway's own LAN address (DNSListen)", a)
		}
	}
	for _, m := range c.BypassMACs {
		if len(m) != 6 || m[0]&1 != 0 {
			v.errorf(v.line("gateway", "Bypass"), "Bypass", "6-byte unicast MAC addresses, e.g. 02:11:22:33:44:55", "%v is not a device's MAC address", m)
		}
	}
	for _, d := range c.LocalDomains {
		if name, msg := checkDomain(d); msg != "" || name != d {
			v.errorf(v.line("gateway", "LocalDomains"), "LocalDomains", "lower-case domain names without a final dot, e.g. example.de", "%q: %s", d, cmp.Or(msg, "not in lower case without a final dot"))
			continue
		}
		for _, e := range c.EndpointList() {
			if !e.IsLiteral() && e.Host != "" && under(e.Host, d) {
				v.errorf(v.line("gateway", "LocalDomains"), "LocalDomains", "names of sites to reach through the local ISP, not the home endpoint's",
					"%q is the Endpoint's name %s or a parent of it: the gateway resolves it through Resolver already, and the LAN's way home must not leave the tunnel", d, e.Host)
			}
		}
	}
}
