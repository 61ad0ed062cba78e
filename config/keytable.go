package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/fobgw/fobgw/pmtud"
	"github.com/fobgw/fobgw/policyroute"
	"github.com/fobgw/fobgw/portal"
)

type keyDef struct {
	name  string // canonical spelling
	parse func(p *parser, c *Config, v string) (problem, expected string)
}

var sections = map[string][]keyDef{
	"interface": {
		{"Name", func(p *parser, c *Config, v string) (string, string) {
			if msg := checkIfName(v); msg != "" {
				return msg, "an interface name of 1 to 15 characters without '/', ':' or spaces, e.g. fobgw0"
			}
			c.Name = v
			return "", ""
		}},
		{"PrivateKey", func(p *parser, c *Config, v string) (string, string) {
			k, err := ParseKey(v)
			if err != nil {
				return err.Error(), "a base64 key as printed by `fobgw genkey` or `wg genkey`"
			}
			c.PrivateKey = &k
			return "", ""
		}},
		{"PrivateKeyFile", func(p *parser, c *Config, v string) (string, string) {
			if !strings.HasPrefix(v, "/") {
				return fmt.Sprintf("%q is not an absolute path", v), "an absolute path, e.g. /var/lib/fobgw/private.key"
			}
			c.PrivateKeyFile = v
			return "", ""
		}},
		{"ListenPort", func(p *parser, c *Config, v string) (string, string) {
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil || n == 0 {
				return fmt.Sprintf("%q is not a port", v), "a UDP port from 1 to 65535, e.g. 13231"
			}
			c.ListenPort = uint16(n)
			return "", ""
		}},
		{"Address", func(p *parser, c *Config, v string) (string, string) {
			list, msg := parsePrefixList(v, false)
			if msg != "" {
				return msg, "the tunnel address with its prefix length, e.g. 10.1.200.2/24"
			}
			c.Address = list
			return "", ""
		}},
		{"MTU", func(p *parser, c *Config, v string) (string, string) {
			n, msg := parseMTU(v)
			if msg != "" {
				return msg, fmt.Sprintf("auto (discover the path MTU, at most %d), or a ceiling from 576 to %d, the most fobgw's packet buffers hold", pmtud.DefaultCeiling, MaxMTU)
			}
			c.MTU = n
			return "", ""
		}},
	},
	"peer": {
		{"PublicKey", func(p *parser, c *Config, v string) (string, string) {
			k, err := ParseKey(v)
			if err != nil {
				return err.Error(), "the home router's base64 public key"
			}
			c.PublicKey = k
			return "", ""
		}},
		{"PresharedKey", func(p *parser, c *Config, v string) (string, string) {
			k, err := ParseKey(v)
			if err != nil {
				return err.Error(), "a base64 key as printed by `wg genpsk`"
			}
			c.PresharedKey = &k
			return "", ""
		}},
		{"Endpoint", func(p *parser, c *Config, v string) (string, string) {
			list, msg := parseEndpointList(v)
			if msg != "" {
				return msg, "host:port with a DNS name or an address, e.g. home.example.net:13231 or [2001:db8::1]:13231, or a comma-separated list of them tried in order"
			}
			c.Endpoint, c.Endpoints = list[0], list
			return "", ""
		}},
		{"AllowedIPs", func(p *parser, c *Config, v string) (string, string) {
			list, msg := parsePrefixList(v, false)
			if msg != "" {
				return msg, "a comma-separated list of prefixes, e.g. 0.0.0.0/0"
			}
			for i := range list {
				list[i] = list[i].Masked()
			}
			c.AllowedIPs = list
			return "", ""
		}},
		{"PersistentKeepalive", func(p *parser, c *Config, v string) (string, string) {
			if strings.EqualFold(v, "off") {
				c.PersistentKeepalive = 0
				return "", ""
			}
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return fmt.Sprintf("%q is not a number of seconds", v), "seconds from 0 to 65535, or off (25 is usual behind NAT)"
			}
			c.PersistentKeepalive = int(n)
			return "", ""
		}},
	},
	"gateway": {
		{"LAN", func(p *parser, c *Config, v string) (string, string) {
			list, msg := parsePrefixList(v, true)
			if msg != "" {
				return msg, "the LAN's network prefixes, comma-separated, e.g. 192.168.86.0/24"
			}
			c.LAN = list
			return "", ""
		}},
		{"LANInterface", func(p *parser, c *Config, v string) (string, string) {
			if msg := checkIfName(v); msg != "" {
				return msg, "the LAN bridge or interface name, e.g. br0"
			}
			c.LANInterface = v
			return "", ""
		}},
		{"Table", func(p *parser, c *Config, v string) (string, string) {
			n, err := policyroute.LookupTable(v)
			if err != nil {
				return fmt.Sprintf("%q: %v", v, err), "a table number from 1 to 252 (or above 255), or a name from /etc/iproute2/rt_tables"
			}
			switch n {
			case 0, 253, 254, 255:
				return fmt.Sprintf("%q is a table the system itself uses", v), "a table of its own for the LAN, e.g. 100"
			}
			c.Table, c.TableName = n, v
			return "", ""
		}},
		{"HomeNetworks", func(p *parser, c *Config, v string) (string, string) {
			if v == "" {
				c.HomeNetworks = nil
				return "", ""
			}
			list, msg := parsePrefixList(v, true)
			if msg != "" {
				return msg, "the home networks' prefixes, comma-separated, e.g. 192.168.88.0/24"
			}
			c.HomeNetworks = list
			return "", ""
		}},
		{"DNSListen", func(p *parser, c *Config, v string) (string, string) {
			ap, msg := parseAddrPort(v, dnsPort)
			if msg != "" {
				return msg, "the LAN address to answer DNS on, with an optional port, e.g. 192.168.86.1:53"
			}
			c.DNSListen = ap
			return "", ""
		}},
		{"DNSUpstream", func(p *parser, c *Config, v string) (string, string) {
			ap, msg := parseAddrPort(v, dnsPort)
			if msg != "" {
				return msg, "the home DNS server's address (reached through the tunnel), e.g. 192.168.88.1"
			}
			c.DNSUpstream = ap
			return "", ""
		}},
		{"Resolver", func(p *parser, c *Config, v string) (string, string) {
			var list []netip.AddrPort
			for _, f := range splitList(v) {
				ap, msg := parseAddrPort(f, dnsPort)
				if msg != "" {
					return msg, "the local ISP's DNS server addresses, comma-separated, e.g. 192.168.2.1"
				}
				list = append(list, ap)
			}
			if len(list) == 0 {
				return "no address given", "the local ISP's DNS server addresses, or remove the line to use /etc/resolv.conf"
			}
			c.Resolver = list
			return "", ""
		}},
		{"Probe", func(p *parser, c *Config, v string) (string, string) {
			ap, msg := parseAddrPort(v, dnsPort)
			if msg != "" {
				return msg, "an address behind the tunnel (with an optional port, default 53), e.g. 10.1.200.1"
			}
			c.Probe = ap
			return "", ""
		}},
		{"ClampMSS", func(p *parser, c *Config, v string) (string, string) {
			switch strings.ToLower(v) {
			case "auto":
				c.ClampMode, c.ClampMSS = ClampAuto, 0
				return "", ""
			case "off":
				c.ClampMode, c.ClampMSS = ClampOff, 0
				return "", ""
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 536 || n > 65495 {
				return fmt.Sprintf("%q is not auto, off or an MSS", v), "auto (MTU-40 / MTU-60), off, or an MSS from 536 to MTU-40"
			}
			c.ClampMode, c.ClampMSS = ClampFixed, n
			return "", ""
		}},
		{"KillSwitch", func(p *parser, c *Config, v string) (string, string) {
			b, ok := parseBool(v)
			if !ok {
				return fmt.Sprintf("%q is not on or off", v), "on or off"
			}
			c.KillSwitch = b
			return "", ""
		}},
		{"Masquerade", func(p *parser, c *Config, v string) (string, string) {
			b, ok := parseBool(v)
			if !ok {
				return fmt.Sprintf("%q is not on or off", v), "on (the LAN leaves the tunnel with the tunnel address) or off"
			}
			c.Masquerade = b
			return "", ""
		}},
		{"Bypass", func(p *parser, c *Config, v string) (string, string) {
			addrs, macs, msg := parseBypass(v)
			if msg != "" {
				return msg, "LAN addresses or MAC addresses of devices, comma-separated, e.g. 192.168.86.50, 02:11:22:33:44:55; or nothing"
			}
			c.BypassAddrs, c.BypassMACs = addrs, macs
			return "", ""
		}},
		{"LocalDomains", func(p *parser, c *Config, v string) (string, string) {
			names, msg := parseDomains(v)
			if msg != "" {
				return msg, "domain names, comma-separated, e.g. example.de, bank.example; or nothing"
			}
			c.LocalDomains = names
			return "", ""
		}},
		{"MetricsListen", func(p *parser, c *Config, v string) (string, string) {
			if v != "" {
				if msg := checkListen(v); msg != "" {
					return msg, "address:port such as 127.0.0.1:9636, or nothing to disable the metrics"
				}
			}
			c.MetricsListen = v
			return "", ""
		}},
		{"StatusListen", func(p *parser, c *Config, v string) (string, string) {
			if v == "" {
				c.StatusListen = netip.AddrPort{}
				return "", ""
			}
			ap, err := netip.ParseAddrPort(v)
			if err != nil || ap.Port() == 0 {
				return fmt.Sprintf("%q is not address:port", v), "the gateway's LAN address and a port, e.g. 192.168.86.1:80, or nothing for no status page"
			}
			c.StatusListen = ap
			return "", ""
		}},
		{"PortalCheck", func(p *parser, c *Config, v string) (string, string) {
			chk, err := portal.ParseCheck(v)
			if err != nil {
				var ve *portal.ValueError
				if errors.As(err, &ve) {
					return ve.Problem, ve.Expected
				}
				return err.Error(), ""
			}
			c.PortalCheck = chk
			return "", ""
		}},
	},
}

// required lists the keys without a default.
var required = map[string][]string{
	"interface": {"Address"},
	"peer":      {"PublicKey", "Endpoint", "AllowedIPs"},
	"gateway":   {"LAN", "LANInterface", "Table", "DNSListen", "DNSUpstream"},
}

// hints explain wg-quick keys that fobgw does not take.
var hints = map[string]string{
	"interface/dns":        "fobgw answers the LAN itself: set DNSListen and DNSUpstream in [Gateway]",
	"interface/table":      "set Table in [Gateway]",
	"interface/fwmark":     "fobgw routes by source and input interface, not by mark; remove the line",
	"interface/preup":      "fobgw runs no hooks; remove the line",
	"interface/postup":     "fobgw runs no hooks; remove the line",
	"interface/predown":    "fobgw runs no hooks; remove the line",
	"interface/postdown":   "fobgw runs no hooks; remove the line",
	"interface/saveconfig": "fobgw never writes its configuration; remove the line",
}

var sectionNames = map[string]string{"interface": "Interface", "peer": "Peer", "gateway": "Gateway"}

func findKey(section, k string) (keyDef, bool) {
	for _, d := range sections[section] {
		if strings.EqualFold(d.name, k) {
			return d, true
		}
	}
	return keyDef{}, false
}

func keyList(section string) string {
	var names []string
	for _, d := range sections[section] {
		names = append(names, d.name)
	}
	return strings.Join(names, ", ")
}
