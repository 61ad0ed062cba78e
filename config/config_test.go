package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fobgw/fobgw/config/configtest"
	"github.com/fobgw/fobgw/portal"
)

// baseConfig is the story's FOB; line numbers matter to the tests below.
const baseConfig = configtest.Base

func withLine(tb testing.TB, key, repl string) string {
	tb.Helper()
	return configtest.WithLine(tb, key, repl)
}

func replaceLine(tb testing.TB, text, key, repl string) string {
	tb.Helper()
	return configtest.ReplaceLine(tb, text, key, repl)
}

func mustParse(tb testing.TB, text string) *Config {
	tb.Helper()
	c, err := ParseConfig("test.conf", []byte(text))
	if err != nil {
		tb.Fatalf("ParseConfig: %v", err)
	}
	return c
}

func TestParseConfigStory(t *testing.T) {
	c := mustParse(t, baseConfig)
	want := map[string]string{
		"Name":           "fobgw0",
		"PrivateKeyFile": "/var/lib/fobgw/private.key",
		"ListenPort":     "13231",
		"Address":        "[10.1.200.2/24]",
		"MTU":            "1420",
		"PublicKey":      "If7ysNHrNZ2PmoVW1ckVL1FQApOBPORTAWgAq82zXSA=",
		"Endpoint":       "home.example.net:13231",
		"AllowedIPs":     "[0.0.0.0/0]",
		"Keepalive":      "25",
		"LAN":            "[192.168.86.0/24]",
		"LANInterface":   "br0",
		"Table":          "100",
		"HomeNetworks":   "[192.168.88.0/24]",
		"DNSListen":      "192.168.86.1:53",
		"DNSUpstream":    "192.168.88.1:53",
		"Resolver":       "[192.168.2.1:53]",
		"Probe":          "192.168.88.1:53", // default: DNSUpstream
		"ClampMode":      "0",
		"KillSwitch":     "true",
		"MetricsListen":  "127.0.0.1:9636",
	}
	got := map[string]string{
		"Name":           c.Name,
		"PrivateKeyFile": c.PrivateKeyFile,
		"ListenPort":     fmt.Sprint(c.ListenPort),
		"Address":        fmt.Sprint(c.Address),
		"MTU":            fmt.Sprint(c.MTU),
		"PublicKey":      c.PublicKey.String(),
		"Endpoint":       c.Endpoint.String(),
		"AllowedIPs":     fmt.Sprint(c.AllowedIPs),
		"Keepalive":      fmt.Sprint(c.PersistentKeepalive),
		"LAN":            fmt.Sprint(c.LAN),
		"LANInterface":   c.LANInterface,
		"Table":          fmt.Sprint(c.Table),
		"HomeNetworks":   fmt.Sprint(c.HomeNetworks),
		"DNSListen":      c.DNSListen.String(),
		"DNSUpstream":    c.DNSUpstream.String(),
		"Resolver":       fmt.Sprint(c.Resolver),
		"Probe":          c.Probe.String(),
		"ClampMode":      fmt.Sprint(int(c.ClampMode)),
		"KillSwitch":     fmt.Sprint(c.KillSwitch),
		"MetricsListen":  c.MetricsListen,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
	if c.PrivateKey != nil || c.Endpoint.IsLiteral() {
		t.Errorf("PrivateKey %v, literal endpoint %v; want nil, false", c.PrivateKey, c.Endpoint.IsLiteral())
	}
}

func TestParseConfigDefaults(t *testing.T) {
	text := baseConfig
	for _, k := range []string{"Name", "MTU", "ClampMSS", "KillSwitch", "MetricsListen", "ListenPort", "HomeNetworks", "PersistentKeepalive", "Resolver"} {
		text = strings.Replace(text, "\n"+k+" =", "\n# "+k+" =", 1)
	}
	c := mustParse(t, text)
	if c.Name != "fobgw0" || c.MTU != 0 || c.MTUCeiling() != 1420 || c.ClampMode != ClampAuto || !c.KillSwitch || c.MetricsListen != "127.0.0.1:9636" ||
		c.ListenPort != 0 || c.HomeNetworks != nil || c.PersistentKeepalive != 0 || c.Resolver != nil {
		t.Errorf("defaults: %+v", c)
	}
}

func TestParseConfigValues(t *testing.T) {
	tests := []struct {
		name  string
		key   string // line replaced
		line  string
		check func(c *Config) bool
	}{
		{"name", "Name", "name = fgw-lab1", func(c *Config) bool { return c.Name == "fgw-lab1" }},
		{"inline key", "PrivateKeyFile", "PrivateKey = oK56DE9Ue9zK76rAc8pBl6opph+1v36lm7cXXsQKrQM=", func(c *Config) bool {
			return c.PrivateKey != nil && c.PrivateKey.String() == "oK56DE9Ue9zK76rAc8pBl6opph+1v36lm7cXXsQKrQM=" && c.PrivateKeyFile == ""
		}},
		{"port", "ListenPort", "LISTENPORT = 51820", func(c *Config) bool { return c.ListenPort == 51820 }},
		{"two addresses", "Address", "Address = 10.1.200.2/24, fd00:1::2/64", func(c *Config) bool { return len(c.Address) == 2 }},
		{"bare address", "Address", "Address = 10.1.200.2", func(c *Config) bool { return c.Address[0].Bits() == 32 }},
		{"mtu", "MTU", "MTU = 1280", func(c *Config) bool { return c.MTU == 1280 }},
		{"mtu auto", "MTU", "MTU = Auto", func(c *Config) bool { return c.MTU == 0 && c.MTUCeiling() == 1420 }},
		{"mtu ceiling", "MTU", "MTU = 1500", func(c *Config) bool { return c.MTU == 1500 && c.MTUCeiling() == 1500 }},
		{"mtu at the packet buffers' limit", "MTU", "MTU = 2016", func(c *Config) bool { return c.MTUCeiling() == 2016 }},
		{"psk", "PersistentKeepalive", "PresharedKey = oK56DE9Ue9zK76rAc8pBl6opph+1v36lm7cXXsQKrQM=", func(c *Config) bool { return c.PresharedKey != nil }},
		{"literal endpoint", "Endpoint", "Endpoint = 198.51.100.2:13231", func(c *Config) bool {
			return c.Endpoint.IsLiteral() && c.Endpoint.Addr == netip.MustParseAddr("198.51.100.2")
		}},
		{"v6 endpoint", "Endpoint", "Endpoint = [2001:db8::1]:13231", func(c *Config) bool { return c.Endpoint.String() == "[2001:db8::1]:13231" }},
		{"fqdn endpoint", "Endpoint", "Endpoint = home.example.net.:1", func(c *Config) bool { return c.Endpoint.Host == "home.example.net" }},
		{"endpoint list", "Endpoint", "Endpoint = home.example.net:13231, home.example.net:443,[2001:db8::1]:51820", func(c *Config) bool {
			return len(c.Endpoints) == 3 && c.Endpoint == c.Endpoints[0] && c.Endpoints[1].Port == 443 && c.Endpoints[2].IsLiteral() &&
				join(c.EndpointList(), ", ") == "home.example.net:13231, home.example.net:443, [2001:db8::1]:51820"
		}},
		{"single endpoint is a list of one", "Endpoint", "Endpoint = home.example.net:13231", func(c *Config) bool {
			return len(c.Endpoints) == 1 && c.Endpoints[0] == c.Endpoint
		}},
		{"masquerade on", "KillSwitch", "Masquerade = on", func(c *Config) bool { return c.Masquerade }},
		{"masquerade off", "KillSwitch", "Masquerade = off", func(c *Config) bool { return !c.Masquerade }},
		{"allowed ips masked", "AllowedIPs", "AllowedIPs = 0.0.0.0/0, 192.168.88.7/24", func(c *Config) bool { return c.AllowedIPs[1].String() == "192.168.88.0/24" }},
		{"keepalive off", "PersistentKeepalive", "PersistentKeepalive = off", func(c *Config) bool { return c.PersistentKeepalive == 0 }},
		{"two lans", "LAN", "LAN = 192.168.86.0/24, 192.168.87.0/24", func(c *Config) bool { return len(c.LAN) == 2 }},
		{"lan interface", "LANInterface", "LANInterface = lan0", func(c *Config) bool { return c.LANInterface == "lan0" }},
		{"table name main is refused elsewhere; number", "Table", "Table = 1000", func(c *Config) bool { return c.Table == 1000 }},
		{"home networks empty", "HomeNetworks", "HomeNetworks =", func(c *Config) bool { return c.HomeNetworks == nil }},
		{"dns listen without port", "DNSListen", "DNSListen = 192.168.86.1", func(c *Config) bool { return c.DNSListen.Port() == 53 }},
		{"dns upstream port", "DNSUpstream", "DNSUpstream = 192.168.88.1:5353", func(c *Config) bool { return c.DNSUpstream.Port() == 5353 }},
		{"resolvers", "Resolver", "Resolver = 192.168.2.1, [2001:db8::53]:53", func(c *Config) bool { return len(c.Resolver) == 2 }},
		{"probe", "Resolver", "Probe = 10.1.200.1", func(c *Config) bool { return c.Probe.String() == "10.1.200.1:53" }},
		{"clamp number", "ClampMSS", "ClampMSS = 1300", func(c *Config) bool { return c.ClampMode == ClampFixed && c.ClampMSS == 1300 }},
		{"clamp off", "ClampMSS", "clampmss = OFF", func(c *Config) bool { return c.ClampMode == ClampOff }},
		{"kill switch off", "KillSwitch", "KillSwitch = no", func(c *Config) bool { return !c.KillSwitch }},
		{"metrics off", "MetricsListen", "MetricsListen =", func(c *Config) bool { return c.MetricsListen == "" }},
		{"status page on the lan", "MetricsListen", "StatusListen = 192.168.86.1:80", func(c *Config) bool { return c.StatusListen.String() == "192.168.86.1:80" }},
		{"status page off", "MetricsListen", "StatusListen =", func(c *Config) bool { return !c.StatusListen.IsValid() }},
		{"portal check default", "MetricsListen", "MetricsListen = 127.0.0.1:9636", func(c *Config) bool { return c.PortalCheck == portal.DefaultCheck }},
		{"portal check off", "MetricsListen", "PortalCheck = off", func(c *Config) bool { return !c.PortalCheck.On() }},
		{"portal check own url", "MetricsListen", "PortalCheck = https://check.example.net/ok 200", func(c *Config) bool {
			return c.PortalCheck == portal.Check{URL: "https://check.example.net/ok", Status: 200}
		}},
		{"metrics lan", "MetricsListen", "MetricsListen = 192.168.86.1:9636", func(c *Config) bool { return c.MetricsListen == "192.168.86.1:9636" }},
		{"metrics v6 loopback", "MetricsListen", "MetricsListen = [::1]:9636", func(c *Config) bool { return c.MetricsListen == "[::1]:9636" }},
		{"resolver loopback stub", "Resolver", "Resolver = 127.0.0.53", func(c *Config) bool { return c.Resolver[0].String() == "127.0.0.53:53" }},
		{"comment after value", "MTU", "MTU = 1400   # lower", func(c *Config) bool { return c.MTU == 1400 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, withLine(t, tt.key, tt.line))
			if !tt.check(c) {
				t.Errorf("%q: unexpected config %+v", tt.line, c)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("parsed config does not validate: %v", err)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		line int    // expected line in the message
		key  string // expected key in the message ("" for none)
		want string // substring of the message
	}{
		{"unknown key", withLine(t, "MTU", "Mtux = 1"), 6, "Mtux", "unknown key"},
		{"wg-quick DNS hint", withLine(t, "MTU", "DNS = 1.1.1.1"), 6, "DNS", "DNSListen"},
		{"duplicate key", withLine(t, "MTU", "Address = 10.1.200.3/24"), 6, "Address", "first at line 5"},
		{"duplicate key other case", withLine(t, "MTU", "ADDRESS = 10.1.200.3/24"), 6, "Address", "set again"},
		{"key outside section", "MTU = 1420\n" + baseConfig, 1, "MTU", "outside any section"},
		{"unknown section", withLine(t, "MTU", "[Interfaces]"), 6, "", "unknown section"},
		{"second peer", baseConfig + "[Peer]\nPublicKey = If7ysNHrNZ2PmoVW1ckVL1FQApOBPORTAWgAq82zXSA=\n", 25, "", "exactly one [Peer]"},
		{"no equals", withLine(t, "MTU", "MTU 1420"), 6, "", "not a key = value line"},
		{"empty value", withLine(t, "MTU", "MTU ="), 6, "MTU", "empty value"},
		{"missing section", strings.Replace(baseConfig, "[Gateway]", "", 1) + "", 0, "", "section [Gateway] missing"},
		{"missing Address", withLine(t, "Address", ""), 1, "Address", "required key missing"},
		{"missing PublicKey", withLine(t, "PublicKey", ""), 8, "PublicKey", "required key missing"},
		{"missing Endpoint", withLine(t, "Endpoint", ""), 8, "Endpoint", "required key missing"},
		{"missing AllowedIPs", withLine(t, "AllowedIPs", ""), 8, "AllowedIPs", "required key missing"},
		{"missing LAN", withLine(t, "LAN", ""), 14, "LAN", "required key missing"},
		{"missing LANInterface", withLine(t, "LANInterface", ""), 14, "LANInterface", "required key missing"},
		{"missing Table", withLine(t, "Table", ""), 14, "Table", "required key missing"},
		{"missing DNSListen", withLine(t, "DNSListen", ""), 14, "DNSListen", "required key missing"},
		{"missing DNSUpstream", withLine(t, "DNSUpstream", ""), 14, "DNSUpstream", "required key missing"},
		{"missing key", withLine(t, "PrivateKeyFile", ""), 1, "PrivateKeyFile", "required key missing"},
		{"both keys", withLine(t, "ListenPort", "PrivateKey = oK56DE9Ue9zK76rAc8pBl6opph+1v36lm7cXXsQKrQM="), 3, "PrivateKeyFile", "set together with PrivateKey"},
		{"bad name", withLine(t, "Name", "Name = a/b"), 2, "Name", "not an interface name"},
		{"long name", withLine(t, "Name", "Name = abcdefghijklmnop"), 2, "Name", "1 to 15"},
		{"bad private key", withLine(t, "PrivateKeyFile", "PrivateKey = abc"), 3, "PrivateKey", "base64"},
		{"relative key file", withLine(t, "PrivateKeyFile", "PrivateKeyFile = key"), 3, "PrivateKeyFile", "absolute path"},
		{"bad port", withLine(t, "ListenPort", "ListenPort = 70000"), 4, "ListenPort", "1 to 65535"},
		{"zero port", withLine(t, "ListenPort", "ListenPort = 0"), 4, "ListenPort", "not a port"},
		{"bad address", withLine(t, "Address", "Address = 10.1.200/24"), 5, "Address", "not a prefix"},
		{"small mtu", withLine(t, "MTU", "MTU = 500"), 6, "MTU", "576 to 2016"},
		{"mtu beyond the packet buffers", withLine(t, "MTU", "MTU = 2017"), 6, "MTU", "576 to 2016, the most fobgw's packet buffers hold"},
		{"mtu neither auto nor a number", withLine(t, "MTU", "MTU = automatic"), 6, "MTU", "auto (discover the path MTU, at most 1420)"},
		{"mtu zero", withLine(t, "MTU", "MTU = 0"), 6, "MTU", "not a usable MTU"},
		{"bad public key", withLine(t, "PublicKey", "PublicKey = If7ysNHrNZ2PmoVW1ckVL1FQApOBPORTAWgAq82zXS="), 9, "PublicKey", "base64"},
		{"endpoint without port", withLine(t, "Endpoint", "Endpoint = home.example.net"), 10, "Endpoint", "no port"},
		{"endpoint bad port", withLine(t, "Endpoint", "Endpoint = home.example.net:x"), 10, "Endpoint", "not a port"},
		{"endpoint bad name", withLine(t, "Endpoint", "Endpoint = home_!.net:1"), 10, "Endpoint", "not a host name"},
		{"endpoint v6 without brackets", withLine(t, "Endpoint", "Endpoint = 2001:db8::1:13231"), 10, "Endpoint", "brackets"},
		{"endpoint unspecified", withLine(t, "Endpoint", "Endpoint = 0.0.0.0:1"), 10, "Endpoint", "unicast"},
		{"endpoint list bad entry", withLine(t, "Endpoint", "Endpoint = home.example.net:13231, home.example.net"), 10, "Endpoint", "no port"},
		{"endpoint list twice", withLine(t, "Endpoint", "Endpoint = home.example.net:443, home.example.net:443"), 10, "Endpoint", "twice"},
		{"endpoint list empty entry", withLine(t, "Endpoint", "Endpoint = ,"), 10, "Endpoint", "no endpoint given"},
		{"masquerade bad", withLine(t, "KillSwitch", "Masquerade = nat"), 23, "Masquerade", "not on or off"},
		{"bad allowed ips", withLine(t, "AllowedIPs", "AllowedIPs = 0.0.0.0/0,"), 11, "AllowedIPs", "empty element"},
		{"bad keepalive", withLine(t, "PersistentKeepalive", "PersistentKeepalive = -1"), 12, "PersistentKeepalive", "seconds"},
		{"lan host bits", withLine(t, "LAN", "LAN = 192.168.86.1/24"), 15, "LAN", "host bits"},
		{"lan overlaps tunnel", withLine(t, "LAN", "LAN = 10.1.0.0/16"), 15, "LAN", "overlaps the tunnel"},
		{"lan interface bad", withLine(t, "LANInterface", "LANInterface = br 0"), 16, "LANInterface", "not an interface name"},
		{"lan interface is tunnel", withLine(t, "LANInterface", "LANInterface = fobgw0"), 16, "LANInterface", "same as the tunnel"},
		{"table main", withLine(t, "Table", "Table = main"), 17, "Table", "the system itself uses"},
		{"table 254", withLine(t, "Table", "Table = 254"), 17, "Table", "the system itself uses"},
		{"table unknown name", withLine(t, "Table", "Table = nosuchtable"), 17, "Table", "nosuchtable"},
		{"home networks bad", withLine(t, "HomeNetworks", "HomeNetworks = 192.168.88.0/33"), 18, "HomeNetworks", "not a prefix"},
		{"home networks outside allowed", strings.Replace(withLine(t, "HomeNetworks", "HomeNetworks = 192.168.99.0/24"), "AllowedIPs = 0.0.0.0/0", "AllowedIPs = 192.168.88.0/24", 1), 18, "HomeNetworks", "AllowedIPs"},
		{"dns listen bad", withLine(t, "DNSListen", "DNSListen = 192.168.86.1:99999"), 19, "DNSListen", "not an address"},
		{"dns listen unspecified", withLine(t, "DNSListen", "DNSListen = 0.0.0.0"), 19, "DNSListen", "unicast"},
		{"dns upstream bad", withLine(t, "DNSUpstream", "DNSUpstream = pihole"), 20, "DNSUpstream", "not an address"},
		{"dns upstream outside allowed", strings.Replace(withLine(t, "HomeNetworks", "HomeNetworks ="), "AllowedIPs = 0.0.0.0/0", "AllowedIPs = 10.0.0.0/8", 1), 20, "DNSUpstream", "AllowedIPs"},
		{"resolver bad", withLine(t, "Resolver", "Resolver = isp"), 21, "Resolver", "not an address"},
		{"resolver through the tunnel", withLine(t, "Resolver", "Resolver = 192.168.88.1"), 21, "Resolver", "inside HomeNetworks"},
		{"probe bad", withLine(t, "Resolver", "Probe = x"), 21, "Probe", "not an address"},
		{"probe outside allowed", strings.Replace(withLine(t, "Resolver", "Probe = 8.8.8.8"), "AllowedIPs = 0.0.0.0/0", "AllowedIPs = 192.168.88.0/24", 1), 21, "Probe", "AllowedIPs"},
		{"clamp bad", withLine(t, "ClampMSS", "ClampMSS = yes"), 22, "ClampMSS", "auto, off"},
		{"clamp above mtu", withLine(t, "ClampMSS", "ClampMSS = 1400"), 22, "ClampMSS", "does not fit"},
		{"kill switch bad", withLine(t, "KillSwitch", "KillSwitch = maybe"), 23, "KillSwitch", "on or off"},
		{"metrics bad", withLine(t, "MetricsListen", "MetricsListen = localhost"), 24, "MetricsListen", "address:port"},
		{"metrics any port", withLine(t, "MetricsListen", "MetricsListen = :9636"), 24, "MetricsListen", "every address, the WAN too; use 127.0.0.1:9636"},
		{"metrics unspecified", withLine(t, "MetricsListen", "MetricsListen = 0.0.0.0:9636"), 24, "MetricsListen", "every address, the WAN too"},
		{"metrics v6 unspecified", withLine(t, "MetricsListen", "MetricsListen = [::]:9636"), 24, "MetricsListen", "every address"},
		{"metrics on the wan", withLine(t, "MetricsListen", "MetricsListen = 192.168.2.2:9636"), 24, "MetricsListen", "neither a loopback address nor inside LAN"},
		{"metrics says how", withLine(t, "MetricsListen", "MetricsListen = 192.168.2.2:9636"), 24, "MetricsListen", "or the LAN address 192.168.86.1:9636"},
		{"status page on the wan", withLine(t, "MetricsListen", "StatusListen = 192.168.2.2:80"), 24, "StatusListen", "not inside LAN"},
		{"status page on loopback", withLine(t, "MetricsListen", "StatusListen = 127.0.0.1:80"), 24, "StatusListen", "192.168.86.1:80"},
		{"status page everywhere", withLine(t, "MetricsListen", "StatusListen = 0.0.0.0:80"), 24, "StatusListen", "never on the WAN"},
		{"status page without port", withLine(t, "MetricsListen", "StatusListen = 192.168.86.1"), 24, "StatusListen", "not address:port"},
		{"portal check not a url", withLine(t, "MetricsListen", "PortalCheck = gstatic"), 24, "PortalCheck", "not an http:// or https:// URL"},
		{"portal check redirect status", withLine(t, "MetricsListen", "PortalCheck = http://check.example.net/ 302"), 24, "PortalCheck", "a redirect or an error is what a portal answers"},
		{"portal check empty", withLine(t, "MetricsListen", "PortalCheck ="), 24, "PortalCheck", "empty value"},
		{"dns listen on the wan", withLine(t, "DNSListen", "DNSListen = 192.168.2.2"), 19, "DNSListen", "not inside LAN"},
		{"dns listen loopback", withLine(t, "DNSListen", "DNSListen = 127.0.0.1:53"), 19, "DNSListen", "not inside LAN"},
		{"resolver in lan", withLine(t, "Resolver", "Resolver = 192.168.86.53"), 21, "Resolver", "inside LAN 192.168.86.0/24"},
		{"resolver is dns listen", withLine(t, "Resolver", "Resolver = 192.168.86.1"), 21, "Resolver", "is DNSListen, fobgw's own forwarder"},
		{"resolver in the tunnel", withLine(t, "Resolver", "Resolver = 10.1.200.1"), 21, "Resolver", "inside the tunnel network 10.1.200.0/24"},
		{"resolver is dns upstream", strings.Replace(withLine(t, "Resolver", "Resolver = 192.168.88.1"), "HomeNetworks = 192.168.88.0/24", "HomeNetworks =", 1), 21, "Resolver", "is DNSUpstream, the home DNS server"},
		{"resolver says what to use", withLine(t, "Resolver", "Resolver = 10.1.200.1"), 21, "Resolver", "the local ISP's resolver"},
		{"bad section header", withLine(t, "MTU", "[Peer"), 6, "", "not a section header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("test.conf", []byte(tt.text))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			msg := err.Error()
			prefix := "test.conf:"
			if tt.line > 0 {
				prefix = fmt.Sprintf("test.conf:%d: ", tt.line)
			}
			if !strings.Contains(msg, prefix) {
				t.Errorf("error %q does not name %q", msg, prefix)
			}
			if tt.key != "" && !strings.Contains(msg, fmt.Sprintf("key %q", tt.key)) {
				t.Errorf("error %q does not name key %q", msg, tt.key)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not say %q", msg, tt.want)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Errorf("error is not a *ConfigError: %T", err)
			} else if !strings.Contains(msg, "; ") && ce.Expected == "" {
				t.Errorf("error %q does not say what is expected", msg)
			}
		})
	}
}

func TestParseConfigAllErrorsReported(t *testing.T) {
	text := withLine(t, "MTU", "MTU = x")
	text = strings.Replace(text, "ListenPort = 13231", "ListenPort = y", 1)
	_, err := ParseConfig("t.conf", []byte(text))
	if err == nil || !strings.Contains(err.Error(), "t.conf:4:") || !strings.Contains(err.Error(), "t.conf:6:") {
		t.Fatalf("want both errors (lines 4 and 6), got %v", err)
	}
}

func TestLoadConfigResolvConf(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fobgw.conf")
	if err := os.WriteFile(path, []byte(withLine(t, "Resolver", "")), 0o600); err != nil {
		t.Fatal(err)
	}
	rc := filepath.Join(dir, "resolv.conf")
	os.WriteFile(rc, []byte("# comment\nsearch lan\nnameserver 192.168.2.1\nnameserver fe80::1%eth0\nnameserver 2001:db8::53\n"), 0o644)
	c, err := LoadConfig(path, LoadOptions{ResolvConf: rc})
	if err != nil {
		t.Fatal(err)
	}
	// resolv.conf is read at resolution time, not at load time.
	if c.Resolver != nil || c.ResolvConf != rc {
		t.Errorf("Resolver %v, ResolvConf %q; want none and %q", c.Resolver, c.ResolvConf, rc)
	}
	rs, err := c.ResolvConfServers(nil)
	if err != nil || fmt.Sprint(rs) != "[192.168.2.1:53 [2001:db8::53]:53]" {
		t.Errorf("nameservers from resolv.conf = %v, %v", rs, err)
	}
	// No nameserver yet (the WAN's DHCP is not done at boot): loading is
	// fine (no ConfigError, no exit 2), and a resolution fails until it is.
	os.WriteFile(rc, []byte("search lan\n"), 0o644)
	c, err = LoadConfig(path, LoadOptions{ResolvConf: rc})
	if err != nil {
		t.Fatalf("resolv.conf without nameservers at load time: %v", err)
	}
	if _, err := c.ResolvConfServers(nil); err == nil || !strings.Contains(err.Error(), "no usable nameserver") {
		t.Errorf("nameservers of an empty resolv.conf: %v", err)
	}
	// Nameservers fobgw must not use (its own forwarder, the LAN, the
	// tunnel) are left out, with the reason.
	os.WriteFile(rc, []byte("nameserver 192.168.86.1\nnameserver 10.1.200.1\n"), 0o644)
	if _, err := c.ResolvConfServers(nil); err == nil || !strings.Contains(err.Error(), "DNSListen") || !strings.Contains(err.Error(), "tunnel network") {
		t.Errorf("only forbidden nameservers: %v", err)
	}
	// The file is read again at each call: once DHCP wrote it, the next
	// resolution uses it.
	os.WriteFile(rc, []byte("nameserver 192.168.86.1\nnameserver 192.168.2.1\n"), 0o644)
	if rs, err := c.ResolvConfServers(nil); err != nil || fmt.Sprint(rs) != "[192.168.2.1:53]" {
		t.Errorf("nameservers after resolv.conf was filled: %v, %v", rs, err)
	}
	// A local network that uses home's addresses (HomeNetworks is
	// 192.168.88.0/24): its resolver is refused unless the gateway is on
	// that network (onLink), and only the part of HomeNetworks it is on.
	os.WriteFile(rc, []byte("nameserver 192.168.88.1\nnameserver 192.168.88.254\nnameserver 10.1.200.1\n"), 0o644)
	if _, err := c.ResolvConfServers(nil); err == nil || !strings.Contains(err.Error(), "HomeNetworks") {
		t.Errorf("a nameserver inside HomeNetworks, not on-link: %v; want it refused", err)
	}
	if _, err := c.ResolvConfServers(func(netip.Addr) bool { return false }); err == nil || !strings.Contains(err.Error(), "HomeNetworks") {
		t.Errorf("a nameserver inside HomeNetworks, onLink false: %v; want it refused", err)
	}
	onLink := func(a netip.Addr) bool { return netip.MustParsePrefix("192.168.88.0/24").Contains(a) }
	if rs, err := c.ResolvConfServers(onLink); err != nil || fmt.Sprint(rs) != "[192.168.88.1:53 192.168.88.254:53]" {
		t.Errorf("nameservers inside HomeNetworks (one DNSUpstream's address) on a network the gateway is on: %v, %v; want both (and still not the tunnel's)", rs, err)
	}
}

// TestLoadConfigPresharedKeyMode: a readable file holding only an inline
// PresharedKey names that key, not PrivateKey.
func TestLoadConfigPresharedKeyMode(t *testing.T) {
	text := withLine(t, "PersistentKeepalive", "PresharedKey = oK56DE9Ue9zK76rAc8pBl6opph+1v36lm7cXXsQKrQM=")
	path := filepath.Join(t.TempDir(), "fobgw.conf")
	if err := os.WriteFile(path, []byte(text), 0o640); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o640)
	_, err := LoadConfig(path, LoadOptions{})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Key != "PresharedKey" || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Errorf("group-readable config with an inline PresharedKey: %v", err)
	}
}

func TestLoadConfigInlineKeyMode(t *testing.T) {
	text := withLine(t, "PrivateKeyFile", "PrivateKey = oK56DE9Ue9zK76rAc8pBl6opph+1v36lm7cXXsQKrQM=")
	for _, tt := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o600, true}, {0o400, true}, {0o640, false}, {0o644, false}, {0o604, false}} {
		t.Run(tt.mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "fobgw.conf")
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(path, LoadOptions{})
			if tt.ok && err != nil {
				t.Errorf("mode %v: %v", tt.mode, err)
			}
			if !tt.ok && (err == nil || !strings.Contains(err.Error(), "chmod 600 "+path)) {
				t.Errorf("mode %v: want refusal with the chmod command, got %v", tt.mode, err)
			}
		})
	}
	// A key file config may be world-readable.
	path := filepath.Join(t.TempDir(), "fobgw.conf")
	os.WriteFile(path, []byte(baseConfig), 0o644)
	os.Chmod(path, 0o644)
	if _, err := LoadConfig(path, LoadOptions{}); err != nil {
		t.Errorf("world-readable config without inline key: %v", err)
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.conf"), LoadOptions{})
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want *ConfigError, got %v", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(baseConfig))
	f.Add([]byte(withLine(f, "Endpoint", "Endpoint = [2001:db8::1]:13231")))
	f.Add([]byte(withLine(f, "PrivateKeyFile", "PrivateKey = oK56DE9Ue9zK76rAc8pBl6opph+1v36lm7cXXsQKrQM=")))
	f.Add([]byte("[Interface]\nAddress=1.2.3.4\n[Peer]\n[Gateway]\nTable=main\n"))
	f.Add([]byte("[interface]\n#x\n\n= \n[peer\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig("fuzz.conf", data)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if !strings.HasPrefix(err.Error(), "fuzz.conf") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed config does not re-validate: %v", err)
		}
		if _, err := ParseConfig("fuzz.conf", data); err != nil {
			t.Fatalf("second parse failed: %v", err)
		}
	})
}

func TestParseConfigBreakout(t *testing.T) {
	text := withLine(t, "MetricsListen", "Bypass = 192.168.86.50, 02:11:22:33:44:55, 192.168.86.50, 02-11-22-33-44-55\nLocalDomains = Example.DE., bank.example, example.de")
	c := mustParse(t, text)
	if got := fmt.Sprint(c.BypassAddrs, c.BypassMACs, c.LocalDomains); got != "[192.168.86.50] [02:11:22:33:44:55] [example.de bank.example]" {
		t.Errorf("parsed %s", got)
	}
	if !c.Breakout() {
		t.Error("Breakout() is false with Bypass and LocalDomains set")
	}
	c = mustParse(t, withLine(t, "MetricsListen", "Bypass =\nLocalDomains ="))
	if c.Breakout() || c.BypassAddrs != nil || c.LocalDomains != nil {
		t.Errorf("empty keys give %v %v %v", c.BypassAddrs, c.BypassMACs, c.LocalDomains)
	}
	if mustParse(t, baseConfig).Breakout() {
		t.Error("the default asks for the breakout")
	}
}

func TestParseConfigBreakoutErrors(t *testing.T) {
	tests := []struct {
		name, value string
		line        int
		key, want   string
	}{
		{"address outside lan", "Bypass = 192.168.87.50", 24, "Bypass", "192.168.87.50 is not inside LAN"},
		{"the gateway itself", "Bypass = 192.168.86.1", 24, "Bypass", "the gateway's own LAN address"},
		{"malformed mac", "Bypass = 02:11:22:33:44", 24, "Bypass", "neither an address nor a MAC"},
		{"long hardware address", "Bypass = 02-11-22-33-44-55-66-77", 24, "Bypass", "8-byte hardware address"},
		{"multicast mac", "Bypass = 01:00:5e:00:00:01", 24, "Bypass", "not a device's (unicast) MAC"},
		{"zero mac", "Bypass = 00:00:00:00:00:00", 24, "Bypass", "not a device's (unicast) MAC"},
		{"name with a space", "LocalDomains = bank example", 24, "LocalDomains", "not a domain name"},
		{"empty label", "LocalDomains = bank..example", 24, "LocalDomains", "labels of 1 to 63"},
		{"root", "LocalDomains = .", 24, "LocalDomains", "the root"},
		{"address as name", "LocalDomains = 203.0.113.80", 24, "LocalDomains", "an address, not a domain name"},
		{"hyphen", "LocalDomains = -bank.example", 24, "LocalDomains", "begin or end with '-'"},
		{"endpoint's own name", "LocalDomains = Home.Example.Net", 24, "LocalDomains", "the Endpoint's name home.example.net or a parent"},
		{"endpoint's parent", "LocalDomains = example.net", 24, "LocalDomains", "Resolver already"},
		{"top-level parent", "LocalDomains = net", 24, "LocalDomains", "or a parent of it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("test.conf", []byte(withLine(t, "MetricsListen", tt.value)))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			msg := err.Error()
			if p := fmt.Sprintf("test.conf:%d: key %q: ", tt.line, tt.key); !strings.Contains(msg, p) {
				t.Errorf("error %q does not begin with %q", msg, p)
			}
			if !strings.Contains(msg, tt.want) || !strings.Contains(msg, "; ") {
				t.Errorf("error %q does not say %q and what is expected", msg, tt.want)
			}
		})
	}
	// Not a parent: a name beside or below the endpoint's is fine.
	mustParse(t, withLine(t, "MetricsListen", "LocalDomains = example.org, tv.home.example.net, myexample.net"))
	// Every error at once, nothing returned.
	c, err := ParseConfig("t.conf", []byte(withLine(t, "MetricsListen", "Bypass = 10.9.9.9, 02:11:22:33:44:55\nLocalDomains = example.net")))
	if c != nil || err == nil {
		t.Fatalf("got %v, %v", c, err)
	}
	if !strings.Contains(err.Error(), "t.conf:24: key \"Bypass\"") || !strings.Contains(err.Error(), "t.conf:25: key \"LocalDomains\"") {
		t.Errorf("want both lines' errors, got %v", err)
	}
}
