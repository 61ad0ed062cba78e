package policyroute

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// State is the desired routing state as data. Rules and routes carry
// Protocol when installed.
type State struct {
	Rules   []Rule
	Routes  []Route
	Sysctls []Sysctl
}

// Rule is one policy rule: `from Src iif IifName [fwmark Mark/Mark] lookup
// Table priority Priority`.
type Rule struct {
	Src      netip.Prefix
	IifName  string
	Mark     uint32 // 0: no fwmark selector; else Mark with itself as mask
	Table    int
	Priority int
}

// Route is one route. Dev is empty for an unreachable route.
type Route struct {
	Table       int // 254 (main) for the home networks
	Dst         netip.Prefix
	Dev         string // empty when Unreachable
	Unreachable bool
	Metric      int
}

// Sysctl is one kernel setting, Key in sysctl(8) dotted form.
type Sysctl struct {
	Key    string
	Value  string
	path   string // relative to /proc/sys
	tunnel bool   // names the tunnel interface
}

// NeedsTunnel reports whether the route names the tunnel interface and so can
// only be installed once it exists.
func (r Route) NeedsTunnel() bool { return !r.Unreachable }

// Desired computes the state cfg asks for, after validating cfg; errors wrap
// ErrConfig and say which field is wrong and how to fix it.
func Desired(cfg Config) (State, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return State{}, err
	}
	var s State
	has6 := false
	for _, lan := range cfg.LAN {
		has6 = has6 || lan.Addr().Is6()
		if cfg.BypassMark != 0 {
			s.Rules = append(s.Rules, Rule{Src: lan, IifName: cfg.LANInterface, Mark: cfg.BypassMark, Table: tableMain, Priority: RulePriorityBypass})
		}
		s.Rules = append(s.Rules, Rule{Src: lan, IifName: cfg.LANInterface, Table: cfg.Table, Priority: RulePriority})
	}
	// Every other source on the LAN interface to the same table: IPv4
	// always (fobgw turns IPv4 forwarding on whatever the LAN), IPv6 with an
	// IPv6 LAN (the only case it turns IPv6 forwarding on).
	for _, is4 := range []bool{true, false} {
		if is4 || hasFamily(cfg.LAN, false) {
			s.Rules = append(s.Rules, Rule{Src: anyOf(is4), IifName: cfg.LANInterface, Table: cfg.Table, Priority: RulePriorityOther})
		}
	}
	// Table T: one default per LAN family; with an IPv6 LAN alone, the kill
	// switch for what else comes in over IPv4.
	for _, is4 := range []bool{true, false} {
		def := anyOf(is4)
		if hasFamily(cfg.LAN, is4) {
			s.Routes = append(s.Routes, Route{Table: cfg.Table, Dst: def, Dev: cfg.TunnelInterface, Metric: MetricTunnel})
		} else if !is4 {
			continue
		}
		if cfg.KillSwitch {
			s.Routes = append(s.Routes, Route{Table: cfg.Table, Dst: def, Unreachable: true, Metric: MetricKillSwitch})
		}
	}
	for _, h := range cfg.HomeNetworks {
		s.Routes = append(s.Routes, Route{Table: tableMain, Dst: h, Dev: cfg.TunnelInterface, Metric: MetricTunnel})
		if cfg.KillSwitch {
			s.Routes = append(s.Routes, Route{Table: tableMain, Dst: h, Unreachable: true, Metric: MetricKillSwitch})
		}
	}
	s.Sysctls = append(s.Sysctls, newSysctl("1", false, "net", "ipv4", "ip_forward"))
	if has6 {
		s.Sysctls = append(s.Sysctls, newSysctl("1", false, "net", "ipv6", "conf", "all", "forwarding"))
	}
	s.Sysctls = append(s.Sysctls, newSysctl("2", true, "net", "ipv4", "conf", cfg.TunnelInterface, "rp_filter"))
	return s, nil
}

// anyOf returns the prefix of every address of a family: 0.0.0.0/0 or ::/0.
func anyOf(is4 bool) netip.Prefix {
	if is4 {
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
}

func hasFamily(ps []netip.Prefix, is4 bool) bool {
	for _, p := range ps {
		if p.Addr().Is4() == is4 {
			return true
		}
	}
	return false
}

func newSysctl(value string, tunnel bool, parts ...string) Sysctl {
	key := strings.Join(parts, ".")
	path := strings.Join(parts, "/")
	for _, p := range parts {
		if strings.Contains(p, ".") {
			key = path // sysctl(8) accepts the slash form for names with dots (eth0.100)
			break
		}
	}
	return Sysctl{Key: key, Value: value, path: path, tunnel: tunnel}
}

// NeedsTunnel reports whether the sysctl names the tunnel interface.
func (s Sysctl) NeedsTunnel() bool { return s.tunnel }

// String prints the state as the commands that would set it up by hand, one
// per line: `ip rule add ...`, `ip route add ...`, `sysctl -w ...`.
func (s State) String() string {
	var b strings.Builder
	for _, r := range s.Rules {
		b.WriteString(r.String())
		b.WriteByte('\n')
	}
	for _, r := range s.Routes {
		b.WriteString(r.String())
		b.WriteByte('\n')
	}
	for _, c := range s.Sysctls {
		b.WriteString(c.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func (r Rule) String() string {
	src := r.Src.String()
	if r.Src.Bits() == 0 {
		src = "all"
	}
	if r.Mark != 0 {
		table := strconv.Itoa(r.Table)
		if r.Table == tableMain {
			table = "main"
		}
		return fmt.Sprintf("ip %srule add from %s iif %s fwmark %#x/%#x lookup %s priority %d protocol %d",
			family(r.Src), src, r.IifName, r.Mark, r.Mark, table, r.Priority, Protocol)
	}
	return fmt.Sprintf("ip %srule add from %s iif %s lookup %d priority %d protocol %d",
		family(r.Src), src, r.IifName, r.Table, r.Priority, Protocol)
}

func (r Route) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ip %sroute add ", family(r.Dst))
	if r.Unreachable {
		b.WriteString("unreachable ")
	}
	if r.Dst.Bits() == 0 {
		b.WriteString("default")
	} else {
		b.WriteString(r.Dst.String())
	}
	if !r.Unreachable {
		fmt.Fprintf(&b, " dev %s", r.Dev)
	}
	if r.Table == tableMain {
		b.WriteString(" table main")
	} else {
		fmt.Fprintf(&b, " table %d", r.Table)
	}
	fmt.Fprintf(&b, " metric %d proto %d", r.Metric, Protocol)
	return b.String()
}

func (s Sysctl) String() string { return fmt.Sprintf("sysctl -w %s=%s", s.Key, s.Value) }

func family(p netip.Prefix) string {
	if p.Addr().Is6() {
		return "-6 "
	}
	return ""
}
