package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/fobgw/fobgw/policyroute"
)

// Defaults of the configuration file (see doc.go for the reference).
const (
	DefaultName          = "fobgw0"
	DefaultMTU           = 1420
	DefaultMetricsListen = "127.0.0.1:9586"
	DefaultResolvConf    = "/etc/resolv.conf"
	dnsPort              = 53
)

// ClampMode says how ClampMSS was set.
type ClampMode int

const (
	// ClampAuto clamps to the tunnel MTU minus 40 (IPv4) or 60 (IPv6).
	ClampAuto ClampMode = iota
	// ClampFixed clamps to a fixed MSS (ClampMSS = N).
	ClampFixed
	// ClampOff does not clamp.
	ClampOff
)

// Endpoint is the peer's Endpoint: a DNS name or a literal address, and a port.
type Endpoint struct {
	Host string     // as written, without brackets
	Addr netip.Addr // valid when Host is a literal address
	Port uint16
}

// IsLiteral reports whether the endpoint needs no name resolution.
func (e Endpoint) IsLiteral() bool { return e.Addr.IsValid() }

func (e Endpoint) String() string {
	if strings.Contains(e.Host, ":") {
		return "[" + e.Host + "]:" + strconv.Itoa(int(e.Port))
	}
	return e.Host + ":" + strconv.Itoa(int(e.Port))
}

// Config is a parsed and validated configuration file. Parse it with
// ParseConfig or LoadConfig; a Config built by hand must pass Validate.
type Config struct {
	File string // the path it was read from, for messages

	// [Interface]
	Name           string
	PrivateKey     *Key   // inline key, nil when PrivateKeyFile is used
	PrivateKeyFile string // "" when PrivateKey is used
	ListenPort     uint16 // 0: a random port
	Address        []netip.Prefix
	MTU            int

	// [Peer]
	PublicKey           Key
	PresharedKey        *Key
	Endpoint            Endpoint
	AllowedIPs          []netip.Prefix
	PersistentKeepalive int // seconds, 0 = off

	// [Gateway]
	LAN           []netip.Prefix
	LANInterface  string
	Table         int
	TableName     string // as written
	HomeNetworks  []netip.Prefix
	DNSListen     netip.AddrPort
	DNSUpstream   netip.AddrPort
	Resolver      []netip.AddrPort
	Probe         netip.AddrPort
	ClampMode     ClampMode
	ClampMSS      int // the MSS when ClampMode is ClampFixed
	KillSwitch    bool
	MetricsListen string // "" disables the metrics listener

	// ResolvConf is used when Resolver is not set: the resolv.conf file
	// whose nameservers are read at each resolution of the Endpoint's name
	// (so a WAN whose DHCP is not done at boot is waited for, not fatal).
	// LoadConfig sets it; "" means DefaultResolvConf.
	ResolvConf string
}

// ConfigError is an error in the configuration file. Every error that a
// configuration can cause (syntax, values, file permissions) has this type,
// so that callers can tell a usage error (exit code 2) from a runtime one.
type ConfigError struct {
	File     string
	Line     int // 0 when the error concerns the whole file
	Key      string
	Problem  string // what is wrong
	Expected string // what is expected, or what to do
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		fmt.Fprintf(&b, "key %q: ", e.Key)
	}
	b.WriteString(e.Problem)
	if e.Expected != "" {
		b.WriteString("; ")
		b.WriteString(e.Expected)
	}
	return b.String()
}

// LoadOptions are the environment of LoadConfig; the zero value is the real system.
type LoadOptions struct {
	// ResolvConf is the file whose nameservers are used when Resolver is
	// not set; default /etc/resolv.conf. It is read when the name is
	// resolved, not by LoadConfig.
	ResolvConf string
}

// LoadConfig reads, parses and validates the configuration file at path. A
// file holding an inline PrivateKey or PresharedKey that is readable by
// group or others is refused. When Resolver is not set, Config.ResolvConf
// names the resolv.conf to read at resolution time; LoadConfig does not read
// it, so a resolv.conf without nameservers yet (WAN DHCP not done at boot) is
// no error.
func LoadConfig(path string, opt LoadOptions) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{File: path, Problem: fmt.Sprintf("cannot read the configuration file: %v", err),
			Expected: "pass an existing, readable file with -config"}
	}
	rc := opt.ResolvConf
	if rc == "" {
		rc = DefaultResolvConf
	}
	cfg, err := parseConfig(path, data)
	if err != nil {
		return nil, err
	}
	if len(cfg.Resolver) == 0 {
		cfg.ResolvConf = rc
	}
	if cfg.PrivateKey != nil || cfg.PresharedKey != nil {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, &ConfigError{File: path, Problem: err.Error()}
		}
		key := "PrivateKey"
		if cfg.PrivateKey == nil {
			key = "PresharedKey"
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, &ConfigError{File: path, Key: key,
				Problem:  fmt.Sprintf("the file holds a secret key and is readable by group or others (mode %04o)", fi.Mode().Perm()),
				Expected: fmt.Sprintf("run: chmod 600 %s (or use PrivateKeyFile)", path)}
		}
	}
	return cfg, nil
}

// ParseConfig parses and validates a configuration file's contents; name is
// used in messages. When Resolver is not set it is left empty, and so is
// ResolvConf (Run then reads /etc/resolv.conf at resolution time).
func ParseConfig(name string, data []byte) (*Config, error) {
	return parseConfig(name, data)
}

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
			n, err := strconv.Atoi(v)
			if err != nil || n < 576 || n > MaxMTU {
				return fmt.Sprintf("%q is not a usable MTU", v), fmt.Sprintf("a number from 576 to %d, the most fobgw's packet buffers hold (1420 for WireGuard over a 1500-byte link)", MaxMTU)
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
			e, msg := parseEndpoint(v)
			if msg != "" {
				return msg, "host:port with a DNS name or an address, e.g. home.example.net:13231 or [2001:db8::1]:13231"
			}
			c.Endpoint = e
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
		{"MetricsListen", func(p *parser, c *Config, v string) (string, string) {
			if v != "" {
				if msg := checkListen(v); msg != "" {
					return msg, "address:port such as 127.0.0.1:9586, or nothing to disable the metrics"
				}
			}
			c.MetricsListen = v
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

type parser struct {
	file string
	errs []error
}

func (p *parser) errorf(line int, key, expected, format string, args ...any) {
	p.errs = append(p.errs, &ConfigError{File: p.file, Line: line, Key: key, Problem: fmt.Sprintf(format, args...), Expected: expected})
}

func parseConfig(name string, data []byte) (*Config, error) {
	p := &parser{file: name}
	c := &Config{
		File:          name,
		Name:          DefaultName,
		MTU:           DefaultMTU,
		ClampMode:     ClampAuto,
		KillSwitch:    true,
		MetricsListen: DefaultMetricsListen,
	}
	seenSection := map[string]int{}
	seenKey := map[string]int{} // "section/key" -> line
	section := ""
	lines := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		lines++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				p.errorf(lines, "", "a section header such as [Interface], [Peer] or [Gateway]", "%q is not a section header", line)
				section = "?"
				continue
			}
			s := strings.ToLower(strings.TrimSpace(line[1 : len(line)-1]))
			if _, ok := sections[s]; !ok {
				p.errorf(lines, "", "one of [Interface], [Peer], [Gateway]", "unknown section %q", line)
				section = "?"
				continue
			}
			if prev, dup := seenSection[s]; dup {
				what := "each section once"
				if s == "peer" {
					what = "exactly one [Peer], the home router"
				}
				p.errorf(lines, "", what, "section [%s] repeated (first at line %d)", sectionNames[s], prev)
				section = "?"
				continue
			}
			seenSection[s] = lines
			section = s
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			p.errorf(lines, "", "key = value", "%q is not a key = value line", line)
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if section == "?" {
			continue // already reported
		}
		if section == "" {
			p.errorf(lines, k, "keys inside [Interface], [Peer] or [Gateway]", "key outside any section")
			continue
		}
		def, ok := findKey(section, k)
		if !ok {
			exp := "one of " + keyList(section)
			if h, ok := hints[section+"/"+strings.ToLower(k)]; ok {
				exp = h
			}
			p.errorf(lines, k, exp, "unknown key in [%s]", sectionNames[section])
			continue
		}
		id := section + "/" + strings.ToLower(def.name)
		if prev, dup := seenKey[id]; dup {
			p.errorf(lines, def.name, "each key once; put list values on one line, separated by commas", "set again (first at line %d)", prev)
			continue
		}
		seenKey[id] = lines
		if v == "" && def.name != "MetricsListen" && def.name != "HomeNetworks" {
			p.errorf(lines, def.name, "a value, or remove the line for the default", "empty value")
			continue
		}
		if problem, expected := def.parse(p, c, v); problem != "" {
			p.errorf(lines, def.name, expected, "%s", problem)
		}
	}
	if err := sc.Err(); err != nil {
		p.errorf(lines+1, "", "a text file with lines shorter than 1 MiB", "cannot read: %v", err)
	}
	// Missing sections and keys.
	for _, s := range []string{"interface", "peer", "gateway"} {
		at, ok := seenSection[s]
		if !ok {
			p.errorf(max(lines, 1), "", "add a ["+sectionNames[s]+"] section", "section [%s] missing", sectionNames[s])
			continue
		}
		for _, k := range required[s] {
			if _, ok := seenKey[s+"/"+strings.ToLower(k)]; !ok {
				p.errorf(at, k, "add it to ["+sectionNames[s]+"]", "required key missing")
			}
		}
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	line := func(s, k string) int {
		if l, ok := seenKey[s+"/"+strings.ToLower(k)]; ok {
			return l
		}
		return seenSection[s]
	}
	_, hasKey := seenKey["interface/privatekey"]
	_, hasFile := seenKey["interface/privatekeyfile"]
	switch {
	case hasKey && hasFile:
		p.errorf(line("interface", "PrivateKeyFile"), "PrivateKeyFile", "either PrivateKey or PrivateKeyFile", "set together with PrivateKey (line %d)", line("interface", "PrivateKey"))
	case !hasKey && !hasFile:
		p.errorf(seenSection["interface"], "PrivateKeyFile", "add PrivateKeyFile = /var/lib/fobgw/private.key (made on the first run) or PrivateKey", "required key missing")
	}
	if _, ok := seenKey["gateway/probe"]; !ok {
		c.Probe = c.DNSUpstream
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	if err := c.validate(line); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks the relations between the values of a Config. ParseConfig
// calls it; call it on a Config made or changed in code.
func (c *Config) Validate() error {
	return c.validate(func(string, string) int { return 0 })
}

func (c *Config) validate(line func(section, key string) int) error {
	p := &parser{file: c.File}
	if msg := checkIfName(c.Name); msg != "" {
		p.errorf(line("interface", "Name"), "Name", "an interface name such as fobgw0", "%s", msg)
	}
	if (c.PrivateKey == nil) == (c.PrivateKeyFile == "") {
		p.errorf(line("interface", "PrivateKeyFile"), "PrivateKeyFile", "either PrivateKey or PrivateKeyFile", "exactly one of PrivateKey and PrivateKeyFile must be set")
	}
	if len(c.Address) == 0 {
		p.errorf(line("interface", "Address"), "Address", "the tunnel address, e.g. 10.1.200.2/24", "no address")
	}
	for _, a := range c.Address {
		if !a.IsValid() || a.Addr().IsUnspecified() || a.Addr().IsMulticast() {
			p.errorf(line("interface", "Address"), "Address", "a unicast tunnel address, e.g. 10.1.200.2/24", "%v is not a usable address", a)
		}
	}
	if c.MTU < 576 || c.MTU > MaxMTU {
		p.errorf(line("interface", "MTU"), "MTU", fmt.Sprintf("576 to %d (fobgw's packet buffers hold no more)", MaxMTU), "MTU %d out of range", c.MTU)
	}
	if c.Endpoint.Port == 0 || c.Endpoint.Host == "" {
		p.errorf(line("peer", "Endpoint"), "Endpoint", "host:port", "no endpoint")
	}
	if len(c.AllowedIPs) == 0 {
		p.errorf(line("peer", "AllowedIPs"), "AllowedIPs", "0.0.0.0/0 to send the LAN's traffic home", "no prefix")
	}
	if len(c.LAN) == 0 {
		p.errorf(line("gateway", "LAN"), "LAN", "the LAN prefix, e.g. 192.168.86.0/24", "no prefix")
	}
	if msg := checkIfName(c.LANInterface); msg != "" {
		p.errorf(line("gateway", "LANInterface"), "LANInterface", "the LAN interface, e.g. br0", "%s", msg)
	}
	if c.LANInterface == c.Name {
		p.errorf(line("gateway", "LANInterface"), "LANInterface", "the LAN bridge, not the tunnel", "same as the tunnel's Name %q", c.Name)
	}
	if c.Table <= 0 || c.Table == 253 || c.Table == 254 || c.Table == 255 {
		p.errorf(line("gateway", "Table"), "Table", "a table of its own, e.g. 100", "table %d cannot be used", c.Table)
	}
	if !c.DNSListen.IsValid() || c.DNSListen.Port() == 0 {
		p.errorf(line("gateway", "DNSListen"), "DNSListen", "e.g. 192.168.86.1:53", "no listen address")
	}
	if !c.DNSUpstream.IsValid() {
		p.errorf(line("gateway", "DNSUpstream"), "DNSUpstream", "e.g. 192.168.88.1", "no upstream")
	}
	covered := func(a netip.Addr) bool {
		for _, p := range c.AllowedIPs {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if c.DNSUpstream.IsValid() && !covered(c.DNSUpstream.Addr()) {
		p.errorf(line("gateway", "DNSUpstream"), "DNSUpstream", "an address inside AllowedIPs of [Peer], or add it there",
			"%v is not inside the peer's AllowedIPs, so the tunnel would drop the queries", c.DNSUpstream.Addr())
	}
	if c.Probe.IsValid() && !covered(c.Probe.Addr()) {
		p.errorf(line("gateway", "Probe"), "Probe", "an address inside AllowedIPs of [Peer], e.g. the home router's tunnel address",
			"%v is not inside the peer's AllowedIPs, so the probe cannot go through the tunnel", c.Probe.Addr())
	}
	if !c.Probe.IsValid() {
		p.errorf(line("gateway", "Probe"), "Probe", "an address behind the tunnel", "no probe address")
	}
	for _, h := range c.HomeNetworks {
		if !covered(h.Addr()) {
			p.errorf(line("gateway", "HomeNetworks"), "HomeNetworks", "prefixes inside AllowedIPs of [Peer]", "%v is not inside the peer's AllowedIPs", h)
		}
	}
	if c.DNSListen.IsValid() && len(c.LAN) > 0 && !prefixesContain(c.LAN, c.DNSListen.Addr()) {
		p.errorf(line("gateway", "DNSListen"), "DNSListen", fmt.Sprintf("the gateway's address on the LAN, inside %s (e.g. 192.168.86.1:53)", joinPrefixes(c.LAN)),
			"%v is not inside LAN: the LAN's DNS is answered on the LAN address only (nothing but the WireGuard port listens on the WAN, and a loopback address is out of the clients' reach)", c.DNSListen.Addr())
	}
	for _, r := range c.Resolver {
		if why := c.resolverProblem(r.Addr()); why != "" {
			p.errorf(line("gateway", "Resolver"), "Resolver", "the local ISP's resolver (e.g. the WAN's DHCP DNS server), reached without the tunnel", "%s", why)
		}
	}
	for _, l := range c.LAN {
		for _, a := range c.Address {
			if l.Overlaps(a.Masked()) {
				p.errorf(line("gateway", "LAN"), "LAN", "a LAN distinct from the tunnel network", "%v overlaps the tunnel address %v", l, a)
			}
		}
	}
	switch c.ClampMode {
	case ClampAuto, ClampOff:
	case ClampFixed:
		if c.ClampMSS < 536 || c.ClampMSS > c.MTU-40 {
			p.errorf(line("gateway", "ClampMSS"), "ClampMSS", fmt.Sprintf("auto, off, or an MSS from 536 to %d (MTU-40)", c.MTU-40),
				"MSS %d does not fit the tunnel MTU %d", c.ClampMSS, c.MTU)
		}
	default:
		p.errorf(line("gateway", "ClampMSS"), "ClampMSS", "auto, off or a number", "invalid mode %d", c.ClampMode)
	}
	if c.MetricsListen != "" {
		if msg := checkListen(c.MetricsListen); msg != "" {
			p.errorf(line("gateway", "MetricsListen"), "MetricsListen", "address:port, e.g. 127.0.0.1:9586", "%s", msg)
		} else if msg := c.metricsProblem(); msg != "" {
			exp := "use 127.0.0.1:9586 (scrape on the gateway), or the gateway's LAN address and a port, e.g. 192.168.86.1:9586"
			if c.DNSListen.IsValid() {
				exp = fmt.Sprintf("use 127.0.0.1:9586 (scrape on the gateway), or the LAN address %v:9586 (scrape from the LAN)", c.DNSListen.Addr())
			}
			p.errorf(line("gateway", "MetricsListen"), "MetricsListen", exp, "%s", msg)
		}
	}
	if len(p.errs) > 0 {
		return errors.Join(p.errs...)
	}
	return nil
}

// resolverProblem says why a is no resolver for the Endpoint's name, or "".
// The gateway's own lookups must reach the local ISP without the tunnel:
// the name is what repairs the tunnel when home's address changes (the
// story's DNS chicken-and-egg).
func (c *Config) resolverProblem(a netip.Addr) string {
	for _, h := range c.HomeNetworks {
		if h.Contains(a) {
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
	if c.DNSUpstream.IsValid() && a == c.DNSUpstream.Addr() {
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
	return fmt.Sprintf("%v is neither a loopback address nor inside LAN %s, so the metrics would be served beyond the gateway and its LAN", a, joinPrefixes(c.LAN))
}

func prefixesContain(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// resolvConfPath is the resolv.conf used when Resolver is not set.
func (c *Config) resolvConfPath() string {
	if c.ResolvConf != "" {
		return c.ResolvConf
	}
	return DefaultResolvConf
}

// resolvConfServers returns the nameservers of the resolv.conf that
// resolverProblem does not refuse. It is read at each resolution.
func (c *Config) resolvConfServers() ([]netip.AddrPort, error) {
	path := c.resolvConfPath()
	all, err := readResolvConf(path)
	if err != nil {
		return nil, err
	}
	var out []netip.AddrPort
	var why []string
	for _, r := range all {
		if w := c.resolverProblem(r.Addr()); w != "" {
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

func splitList(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parsePrefixList parses "a/n, b/n". With network set, host bits must be zero.
func parsePrefixList(v string, network bool) ([]netip.Prefix, string) {
	var out []netip.Prefix
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			return nil, "empty element in the list"
		}
		var p netip.Prefix
		var err error
		if strings.Contains(f, "/") {
			p, err = netip.ParsePrefix(f)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(f)
			if err == nil {
				if a.Zone() != "" {
					return nil, fmt.Sprintf("%q has a zone", f)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			return nil, fmt.Sprintf("%q is not a prefix", f)
		}
		if network && p.Masked() != p {
			return nil, fmt.Sprintf("%q has host bits set (the network is %v)", f, p.Masked())
		}
		out = append(out, p)
	}
	return out, ""
}

func parseAddrPort(v string, defPort uint16) (netip.AddrPort, string) {
	if a, err := netip.ParseAddr(v); err == nil {
		if a.Zone() != "" {
			return netip.AddrPort{}, fmt.Sprintf("%q has a zone", v)
		}
		if a.IsUnspecified() || a.IsMulticast() {
			return netip.AddrPort{}, fmt.Sprintf("%q is not a unicast address", v)
		}
		return netip.AddrPortFrom(a.Unmap(), defPort), ""
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
		return netip.AddrPort{}, fmt.Sprintf("%q is not an address or address:port", v)
	}
	if ap.Addr().IsUnspecified() || ap.Addr().IsMulticast() {
		return netip.AddrPort{}, fmt.Sprintf("%q is not a unicast address", v)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ""
}

func parseEndpoint(v string) (Endpoint, string) {
	i := strings.LastIndexByte(v, ':')
	if i < 0 {
		return Endpoint{}, fmt.Sprintf("%q has no port", v)
	}
	host, portStr := v[:i], v[i+1:]
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return Endpoint{}, fmt.Sprintf("%q is not a port", portStr)
	}
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return Endpoint{}, fmt.Sprintf("%q has an unclosed bracket", v)
		}
		host = host[1 : len(host)-1]
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return Endpoint{}, fmt.Sprintf("%q is not an IPv6 address", host)
		}
		return Endpoint{Host: host, Addr: a, Port: uint16(port)}, ""
	}
	if strings.Contains(host, ":") {
		return Endpoint{}, fmt.Sprintf("%q: an IPv6 address needs brackets", v)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.IsUnspecified() || a.IsMulticast() {
			return Endpoint{}, fmt.Sprintf("%q is not a unicast address", host)
		}
		return Endpoint{Host: host, Addr: a, Port: uint16(port)}, ""
	}
	if msg := checkHostname(host); msg != "" {
		return Endpoint{}, msg
	}
	return Endpoint{Host: strings.TrimSuffix(host, "."), Port: uint16(port)}, ""
}

func checkHostname(h string) string {
	name := strings.TrimSuffix(h, ".")
	if name == "" || len(name) > 253 {
		return fmt.Sprintf("%q is not a host name", h)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Sprintf("%q is not a host name (empty or long label)", h)
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			ok := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_'
			if !ok {
				return fmt.Sprintf("%q is not a host name (character %q)", h, ch)
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Sprintf("%q is not a host name (label starts or ends with '-')", h)
		}
	}
	return ""
}

func checkIfName(s string) string {
	if s == "" || len(s) > 15 {
		return fmt.Sprintf("%q is not an interface name (1 to 15 characters)", s)
	}
	if s == "." || s == ".." {
		return fmt.Sprintf("%q is not an interface name", s)
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch <= ' ' || ch == '/' || ch == ':' || ch >= 0x7f {
			return fmt.Sprintf("%q is not an interface name (character %q)", s, ch)
		}
	}
	return ""
}

func checkListen(v string) string {
	if strings.HasPrefix(v, ":") {
		n, err := strconv.ParseUint(v[1:], 10, 16)
		if err != nil || n == 0 {
			return fmt.Sprintf("%q is not :port", v)
		}
		return ""
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil || ap.Port() == 0 {
		return fmt.Sprintf("%q is not address:port", v)
	}
	return ""
}

func parseBool(v string) (bool, bool) {
	switch strings.ToLower(v) {
	case "on", "yes", "true", "1":
		return true, true
	case "off", "no", "false", "0":
		return false, true
	}
	return false, false
}

// readResolvConf returns the nameservers listed in a resolv.conf file.
func readResolvConf(path string) ([]netip.AddrPort, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var out []netip.AddrPort
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			a, err := netip.ParseAddr(f[1])
			if err != nil || a.Zone() != "" {
				continue
			}
			out = append(out, netip.AddrPortFrom(a.Unmap(), dnsPort))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s lists no usable nameserver (yet: is the WAN's DHCP done?)", path)
	}
	return out, nil
}
