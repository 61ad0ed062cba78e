package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Validate checks the relations between the values of a Config. ParseConfig
// calls it; call it on a Config made or changed in code.
func (c *Config) Validate() error {
	return c.validate(func(string, string) int { return 0 })
}

// validator checks a Config, collecting every error; line gives the line
// of a key for messages (0 for a Config made in code).
type validator struct {
	*parser
	c    *Config
	line func(section, key string) int
}

func (c *Config) validate(line func(section, key string) int) error {
	v := &validator{parser: &parser{file: c.File}, c: c, line: line}
	v.interfaceKeys()
	v.peerKeys()
	v.gatewayKeys()
	v.throughTunnel()
	v.dnsListen()
	v.resolvers()
	v.tunnelNetwork()
	v.clamp()
	v.metricsListen()
	v.statusListen()
	v.breakout()
	if len(v.errs) > 0 {
		return errors.Join(v.errs...)
	}
	return nil
}

// interfaceKeys checks the [Interface] keys.
func (v *validator) interfaceKeys() {
	c := v.c
	if msg := checkIfName(c.Name); msg != "" {
		v.errorf(v.line("interface", "Name"), "Name", "an interface name such as fobgw0", "%s", msg)
	}
	if (c.PrivateKey == nil) == (c.PrivateKeyFile == "") {
		v.errorf(v.line("interface", "PrivateKeyFile"), "PrivateKeyFile", "either PrivateKey or PrivateKeyFile", "exactly one of PrivateKey and PrivateKeyFile must be set")
	}
	if len(c.Address) == 0 {
		v.errorf(v.line("interface", "Address"), "Address", "the tunnel address, e.g. 10.1.200.2/24", "no address")
	}
	for _, a := range c.Address {
		if !a.IsValid() || a.Addr().IsUnspecified() || a.Addr().IsMulticast() {
			v.errorf(v.line("interface", "Address"), "Address", "a unicast tunnel address, e.g. 10.1.200.2/24", "%v is not a usable address", a)
		}
	}
	if c.MTU != 0 && (c.MTU < 576 || c.MTU > MaxMTU) {
		v.errorf(v.line("interface", "MTU"), "MTU", fmt.Sprintf("auto (0), or 576 to %d (fobgw's packet buffers hold no more)", MaxMTU), "MTU %d out of range", c.MTU)
	}
}

// peerKeys checks the [Peer] keys.
func (v *validator) peerKeys() {
	c := v.c
	if c.Endpoint.Port == 0 || c.Endpoint.Host == "" {
		v.errorf(v.line("peer", "Endpoint"), "Endpoint", "host:port", "no endpoint")
	}
	if len(c.Endpoints) > 0 && c.Endpoints[0] != c.Endpoint {
		v.errorf(v.line("peer", "Endpoint"), "Endpoint", "Endpoint equal to Endpoints[0] (a Config built by hand)", "Endpoint %v is not the list's first entry %v", c.Endpoint, c.Endpoints[0])
	}
	if len(c.AllowedIPs) == 0 {
		v.errorf(v.line("peer", "AllowedIPs"), "AllowedIPs", "0.0.0.0/0 to send the LAN's traffic home", "no prefix")
	}
}

// gatewayKeys checks the [Gateway] keys that stand alone.
func (v *validator) gatewayKeys() {
	c := v.c
	if len(c.LAN) == 0 {
		v.errorf(v.line("gateway", "LAN"), "LAN", "the LAN prefix, e.g. 192.168.86.0/24", "no prefix")
	}
	if msg := checkIfName(c.LANInterface); msg != "" {
		v.errorf(v.line("gateway", "LANInterface"), "LANInterface", "the LAN interface, e.g. br0", "%s", msg)
	}
	if c.LANInterface == c.Name {
		v.errorf(v.line("gateway", "LANInterface"), "LANInterface", "the LAN bridge, not the tunnel", "same as the tunnel's Name %q", c.Name)
	}
	if c.Table <= 0 || c.Table == 253 || c.Table == 254 || c.Table == 255 {
		v.errorf(v.line("gateway", "Table"), "Table", "a table of its own, e.g. 100", "table %d cannot be used", c.Table)
	}
	if !c.DNSListen.IsValid() || c.DNSListen.Port() == 0 {
		v.errorf(v.line("gateway", "DNSListen"), "DNSListen", "e.g. 192.168.86.1:53", "no listen address")
	}
	if !c.DNSUpstream.IsValid() {
		v.errorf(v.line("gateway", "DNSUpstream"), "DNSUpstream", "e.g. 192.168.88.1", "no upstream")
	}
}

// throughTunnel checks that what is reached through the tunnel lies inside AllowedIPs.
func (v *validator) throughTunnel() {
	c := v.c
	covered := func(a netip.Addr) bool { return prefixesContain(c.AllowedIPs, a) }
	if c.DNSUpstream.IsValid() && !covered(c.DNSUpstream.Addr()) {
		v.errorf(v.line("gateway", "DNSUpstream"), "DNSUpstream", "an address inside AllowedIPs of [Peer], or add it there",
			"%v is not inside the peer's AllowedIPs, so the tunnel would drop the queries", c.DNSUpstream.Addr())
	}
	if c.Probe.IsValid() && !covered(c.Probe.Addr()) {
		v.errorf(v.line("gateway", "Probe"), "Probe", "an address inside AllowedIPs of [Peer], e.g. the home router's tunnel address",
			"%v is not inside the peer's AllowedIPs, so the probe cannot go through the tunnel", c.Probe.Addr())
	}
	if !c.Probe.IsValid() {
		v.errorf(v.line("gateway", "Probe"), "Probe", "an address behind the tunnel", "no probe address")
	}
	for _, h := range c.HomeNetworks {
		if !covered(h.Addr()) {
			v.errorf(v.line("gateway", "HomeNetworks"), "HomeNetworks", "prefixes inside AllowedIPs of [Peer]", "%v is not inside the peer's AllowedIPs", h)
		}
	}
}

// dnsListen checks that DNSListen is the gateway's LAN address.
func (v *validator) dnsListen() {
	c := v.c
	if c.DNSListen.IsValid() && len(c.LAN) > 0 && !prefixesContain(c.LAN, c.DNSListen.Addr()) {
		v.errorf(v.line("gateway", "DNSListen"), "DNSListen", fmt.Sprintf("the gateway's address on the LAN, inside %s (e.g. 192.168.86.1:53)", join(c.LAN, ",")),
			"%v is not inside LAN: the LAN's DNS is answered on the LAN address only (nothing but the WireGuard port listens on the WAN, and a loopback address is out of the clients' reach)", c.DNSListen.Addr())
	}
}

// resolvers checks that no Resolver needs the tunnel it repairs.
func (v *validator) resolvers() {
	c := v.c
	for _, r := range c.Resolver {
		if why := c.resolverProblem(r.Addr()); why != "" {
			v.errorf(v.line("gateway", "Resolver"), "Resolver", "the local ISP's resolver (e.g. the WAN's DHCP DNS server), reached without the tunnel", "%s", why)
		}
	}
}

// clamp checks that ClampMSS fits the MTU.
func (v *validator) clamp() {
	c := v.c
	switch c.ClampMode {
	case ClampAuto, ClampOff:
	case ClampFixed:
		if ceiling := c.MTUCeiling(); c.ClampMSS < 536 || c.ClampMSS > ceiling-40 {
			v.errorf(v.line("gateway", "ClampMSS"), "ClampMSS", fmt.Sprintf("auto, off, or an MSS from 536 to %d (MTU-40)", ceiling-40),
				"MSS %d does not fit the tunnel MTU %d", c.ClampMSS, ceiling)
		}
	default:
		v.errorf(v.line("gateway", "ClampMSS"), "ClampMSS", "auto, off or a number", "invalid mode %d", c.ClampMode)
	}
}

// tunnelNetwork checks that the LAN is apart from the tunnel network.
func (v *validator) tunnelNetwork() {
	c := v.c
	for _, l := range c.LAN {
		for _, a := range c.Address {
			if l.Overlaps(a.Masked()) {
				v.errorf(v.line("gateway", "LAN"), "LAN", "a LAN distinct from the tunnel network", "%v overlaps the tunnel address %v", l, a)
			}
		}
	}
}

// metricsListen checks that MetricsListen serves the gateway and its LAN only.
func (v *validator) metricsListen() {
	c := v.c
	if c.MetricsListen != "" {
		if msg := checkListen(c.MetricsListen); msg != "" {
			v.errorf(v.line("gateway", "MetricsListen"), "MetricsListen", "address:port, e.g. 127.0.0.1:9636", "%s", msg)
		} else if msg := c.metricsProblem(); msg != "" {
			exp := "use 127.0.0.1:9636 (scrape on the gateway), or the gateway's LAN address and a port, e.g. 192.168.86.1:9636"
			if c.DNSListen.IsValid() {
				exp = fmt.Sprintf("use 127.0.0.1:9636 (scrape on the gateway), or the LAN address %v:9636 (scrape from the LAN)", c.DNSListen.Addr())
			}
			v.errorf(v.line("gateway", "MetricsListen"), "MetricsListen", exp, "%s", msg)
		}
	}
}

// statusListen checks that the status page is served on the LAN only.
func (v *validator) statusListen() {
	c := v.c
	if !c.StatusListen.IsValid() {
		return
	}
	if a := c.StatusListen.Addr().Unmap(); !prefixesContain(c.LAN, a) {
		exp := fmt.Sprintf("the gateway's address on the LAN, inside %s, e.g. 192.168.86.1:80", join(c.LAN, ","))
		if c.DNSListen.IsValid() {
			exp = fmt.Sprintf("the gateway's LAN address, e.g. %v:80", c.DNSListen.Addr())
		}
		v.errorf(v.line("gateway", "StatusListen"), "StatusListen", exp,
			"%v is not inside LAN: the status page is served on the LAN only, never on the WAN or loopback", a)
	}
}

// resolverProblem says why a is no resolver for the Endpoint's name, or "".
// The gateway's own lookups must reach the local ISP without the tunnel:
// the name is what repairs the tunnel when home's address changes (the
// story's DNS chicken-and-egg).
func (c *Config) resolverProblem(a netip.Addr) string {
	return c.resolverProblemExcept(a, false)
}

// resolverProblemExcept is resolverProblem, but with onLink an address
// inside HomeNetworks, DNSUpstream's too, is no problem: it is on a local
// network that uses home's addresses, where the gateway's own lookups reach
// it without the tunnel (the forwarder's sockets are bound to the tunnel).
func (c *Config) resolverProblemExcept(a netip.Addr, onLink bool) string {
	for _, h := range c.HomeNetworks {
		if h.Contains(a) && !onLink {
			return fmt.Sprintf("%v is inside HomeNetworks %v, so resolving the home name would need the tunnel it is meant to repair", a, h)
		}
	}
	for _, t := range c.Address {
		if t.Masked().Contains(a) {
			return fmt.Sprintf("%v is inside the tunnel network %v (Address), so resolving the home name would need the tunnel it is meant to repair", a, t.Masked())
		}
	}
	if c.DNSListen.IsValid() && a == c.DNSListen.Addr() {
		return fmt.Sprintf("%v is DNSListen, fobgw's own forwarder, which asks DNSUpstream through the tunnel it is meant to repair", a)
	}
	if c.DNSUpstream.IsValid() && a == c.DNSUpstream.Addr() && !onLink {
		return fmt.Sprintf("%v is DNSUpstream, the home DNS server, reached only through the tunnel it is meant to repair", a)
	}
	for _, l := range c.LAN {
		if l.Contains(a) {
			return fmt.Sprintf("%v is inside LAN %v: a resolver there (or fobgw's own forwarder) sends its queries home through the tunnel it is meant to repair", a, l)
		}
	}
	return ""
}

// metricsProblem says why MetricsListen would expose the metrics beyond the
// gateway and its LAN, or "".
func (c *Config) metricsProblem() string {
	if strings.HasPrefix(c.MetricsListen, ":") {
		return fmt.Sprintf("%q listens on every address, the WAN too", c.MetricsListen)
	}
	ap, err := netip.ParseAddrPort(c.MetricsListen)
	if err != nil {
		return fmt.Sprintf("%q is not address:port", c.MetricsListen)
	}
	a := ap.Addr().Unmap()
	switch {
	case a.IsUnspecified():
		return fmt.Sprintf("%q listens on every address, the WAN too", c.MetricsListen)
	case a.IsLoopback() || prefixesContain(c.LAN, a):
		return ""
	}
	return fmt.Sprintf("%v is neither a loopback address nor inside LAN %s, so the metrics would be served beyond the gateway and its LAN", a, join(c.LAN, ","))
}

func prefixesContain(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
