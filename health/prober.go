package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"

	"github.com/fobgw/fobgw/internal/tunsock"
)

// dnsProber probes through the tunnel: a DNS query ("." NS) to Probe from a
// UDP socket bound (SO_BINDTODEVICE) to the tunnel interface, so it can
// only leave through the tunnel (tunsock.Probe). Any DNS answer counts, and
// so does an ICMP port unreachable (ECONNREFUSED on the connected socket):
// both prove that packets crossed the tunnel and back. A Probe address that
// runs no DNS server (the home router's tunnel address, say) therefore
// works too, without a raw socket or CAP_NET_RAW.
//
// With src set, the socket is also bound to that address: the LAN-path
// probe is sent from the gateway's LAN address, as the LAN's packets are,
// so it is answered only when the home peer allows the LAN (or Masquerade
// translates it).
// NewDNSProber returns the probe to addr through the tunnel iface, sent
// from src when it is valid (the LAN-path probe), else from the tunnel
// address.
func NewDNSProber(iface string, addr netip.AddrPort, src netip.Addr) Prober {
	return &dnsProber{iface: iface, addr: addr, src: src}
}

type dnsProber struct {
	iface string
	addr  netip.AddrPort
	src   netip.Addr // the source address; invalid: the kernel's choice (the tunnel address)
}

func (p *dnsProber) Probe(ctx context.Context) error {
	d := &net.Dialer{Control: tunsock.Control(p.iface, nil)}
	if p.src.IsValid() {
		d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.src, 0))
	}
	conn, err := d.DialContext(ctx, "udp", p.addr.String())
	if err != nil {
		return fmt.Errorf("probe socket on %s: %w", p.iface, err)
	}
	defer conn.Close()
	_, err = tunsock.Probe(ctx, conn)
	switch {
	case err == nil, errors.Is(err, syscall.ECONNREFUSED):
		return nil
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		if p.src.IsValid() {
			return fmt.Errorf("probe %v from %v through %s: no answer", p.addr, p.src, p.iface)
		}
		return fmt.Errorf("probe %v through %s: no answer", p.addr, p.iface)
	}
	return fmt.Errorf("probe %v: %w", p.addr, err)
}
