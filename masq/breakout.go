package masq

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"
)

// Mark is the packet mark (meta mark, and ct mark for flows to the local
// sets) of traffic that leaves through the local ISP on purpose. It is one
// bit, set and tested with itself as mask, so that marks of other programs
// in the other bits survive; a policy rule ("fwmark 0x1000000/0x1000000
// lookup main") sends such packets past the LAN's table.
const Mark uint32 = 0x01000000

// Names of the breakout sets and chains in table inet fobgw.
const (
	SetBypass4   = "bypass4"   // IPv4 addresses of bypassed devices; per-element counters
	SetBypass6   = "bypass6"   // IPv6 addresses of bypassed devices; per-element counters
	SetBypassMAC = "bypassmac" // MAC addresses of bypassed devices; per-element counters
	SetLocal4    = "local4"    // IPv4 destinations that leave directly (LocalDomains answers), with timeouts
	SetLocal6    = "local6"    // IPv6 destinations, as SetLocal4
	ChainMark    = "prerouting"
	ChainCount   = "forward"

	// MinLocalTimeout is the shortest life of a destination in the local
	// sets: a record with a TTL of 5 s must not lose its route while the
	// client still connects.
	MinLocalTimeout = 60 * time.Second
)

// Breakout is the part of Config for traffic that leaves through the local
// ISP on purpose: bypassed devices (by address inside the LAN, or by MAC on
// the LAN interface) and destinations the DNS forwarder adds with a timeout.
// All of it is marked with Mark and masqueraded out of any interface but the
// tunnel.
type Breakout struct {
	Enabled      bool               // the sets, marks and WAN masquerade; off: none of them
	LANInterface string             // where the LAN's packets come in, e.g. br0
	Addrs        []netip.Addr       // Bypass by address; each inside Config.LAN
	MACs         []net.HardwareAddr // Bypass by MAC: 6-byte unicast addresses
}

func (b Breakout) validate(lan []netip.Prefix) (Breakout, error) {
	if !b.Enabled {
		return Breakout{}, nil
	}
	if err := checkIfName("LAN interface", b.LANInterface); err != nil {
		return Breakout{}, err
	}
	if len(lan) == 0 {
		return Breakout{}, fmt.Errorf("%w: local breakout needs the LAN's prefix (LAN = 192.168.86.0/24)", ErrConfig)
	}
	out := Breakout{Enabled: true, LANInterface: b.LANInterface}
	for _, a := range b.Addrs {
		if !a.IsValid() || a.Zone() != "" {
			return Breakout{}, fmt.Errorf("%w: bypass address %v: want a plain IPv4 or IPv6 address", ErrConfig, a)
		}
		a = a.Unmap()
		if !slices.ContainsFunc(lan, func(p netip.Prefix) bool { return p.Contains(a) }) {
			return Breakout{}, fmt.Errorf("%w: bypass address %v is not inside LAN: give the address of a LAN device", ErrConfig, a)
		}
		if !slices.Contains(out.Addrs, a) {
			out.Addrs = append(out.Addrs, a)
		}
	}
	for _, m := range b.MACs {
		if len(m) != 6 || m[0]&1 != 0 {
			return Breakout{}, fmt.Errorf("%w: bypass MAC %v: want a 6-byte unicast address such as 02:11:22:33:44:55", ErrConfig, m)
		}
		if !slices.ContainsFunc(out.MACs, func(x net.HardwareAddr) bool { return string(x) == string(m) }) {
			out.MACs = append(out.MACs, slices.Clone(m))
		}
	}
	return out, nil
}
