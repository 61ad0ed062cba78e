package config

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/fobgw/fobgw/portal"
)

// Defaults of the configuration file (README.md is the reference).
const (
	DefaultName          = "fobgw0"
	DefaultMetricsListen = "127.0.0.1:9636"
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

// EndpointList is the Endpoint list; a Config built by hand may set Endpoint
// only.
func (c *Config) EndpointList() []Endpoint {
	if len(c.Endpoints) == 0 {
		return []Endpoint{c.Endpoint}
	}
	return c.Endpoints
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
	MTU            int // 0: auto (see MTUCeiling); a number is the ceiling of path MTU discovery

	// [Peer]
	PublicKey           Key
	PresharedKey        *Key
	Endpoint            Endpoint   // the first entry of Endpoints
	Endpoints           []Endpoint // the Endpoint list in order (see endpoints)
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
	Masquerade    bool           // the LAN's packets leave the tunnel with the tunnel address (masq)
	MetricsListen string         // "" disables the metrics listener
	StatusListen  netip.AddrPort // the LAN status page; invalid (unset) disables it
	PortalCheck   portal.Check   // captive portal detection while no handshake succeeds; the zero Check is off

	// Local breakout: devices and names that leave through the local ISP.
	BypassAddrs  []netip.Addr       // Bypass by address, each inside LAN
	BypassMACs   []net.HardwareAddr // Bypass by MAC: 6-byte unicast addresses
	LocalDomains []string           // names answered through Resolver, with all names below; lower case, no final dot

	// ResolvConf is used when Resolver is not set: the resolv.conf file
	// whose nameservers are read at each resolution of the Endpoint's name
	// (so a WAN whose DHCP is not done at boot is waited for, not fatal).
	// LoadConfig sets it; "" means DefaultResolvConf.
	ResolvConf string
}

// Breakout reports whether the configuration asks for the local breakout
// (Bypass or LocalDomains).
func (c *Config) Breakout() bool {
	return len(c.BypassAddrs)+len(c.BypassMACs)+len(c.LocalDomains) > 0
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
