package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// dnsProber probes through the tunnel: a DNS query ("." NS) to Probe from a
// UDP socket bound (SO_BINDTODEVICE) to the tunnel interface, so it can
// only leave through the tunnel. Any DNS answer counts, and so does an
// ICMP port unreachable (ECONNREFUSED on the connected socket): both prove
// that packets crossed the tunnel and back. A Probe address that runs no
// DNS server (the home router's tunnel address, say) therefore works too,
// without a raw socket or CAP_NET_RAW.
type dnsProber struct {
	iface string
	addr  netip.AddrPort
}

func (p *dnsProber) Probe(ctx context.Context) error {
	m := new(dns.Msg)
	m.SetQuestion(".", dns.TypeNS)
	m.RecursionDesired = false
	d := &net.Dialer{Control: bindToDevice(p.iface)}
	if dl, ok := ctx.Deadline(); ok {
		d.Deadline = dl
	}
	conn, err := d.DialContext(ctx, "udp", p.addr.String())
	if err != nil {
		return fmt.Errorf("probe socket on %s: %w", p.iface, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c := &dns.Conn{Conn: conn}
	if err := c.WriteMsg(m); err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil
		}
		return fmt.Errorf("probe %v: %w", p.addr, err)
	}
	for {
		in, err := c.ReadMsg()
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("probe %v through %s: no answer", p.addr, p.iface)
			}
			if errors.Is(err, dns.ErrId) {
				continue
			}
			return fmt.Errorf("probe %v: %w", p.addr, err)
		}
		if in.Id == m.Id {
			return nil
		}
	}
}

func bindToDevice(iface string) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, iface)
		})
		if err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("bind socket to %s (SO_BINDTODEVICE): %w", iface, serr)
		}
		return nil
	}
}
