package pmtud

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/fobgw/fobgw/internal/tunsock"
)

// triggerPort is the UDP port triggers are addressed to (discard, RFC 863):
// should one ever leave unrewritten, the home router drops it.
const triggerPort = 9

// DialTrigger returns a UDP socket for Device.Prober: bound to the tunnel
// interface iface (SO_BINDTODEVICE, socket(7)), so that triggers enter the
// TUN whatever the routing tables say, and connected to target, the home
// router's IPv4 tunnel address. Call it in the tunnel's network namespace
// once the interface exists.
func DialTrigger(iface string, target netip.Addr) (net.Conn, error) {
	if !target.Is4() {
		return nil, fmt.Errorf("pmtud: probe target %v: want the home router's IPv4 tunnel address", target)
	}
	d := net.Dialer{Control: tunsock.Control(iface, nil)}
	c, err := d.Dial("udp4", netip.AddrPortFrom(target, triggerPort).String())
	if err != nil {
		return nil, fmt.Errorf("pmtud: open the probe socket on %s to %v (needs the tunnel interface up): %w", iface, target, err)
	}
	return c, nil
}
