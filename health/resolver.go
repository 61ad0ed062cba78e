package health

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// dnsResolver resolves the endpoint's name through the configured Resolver
// servers only (the local ISP's), never the system resolver: its sockets
// are plain UDP sockets that follow the main routing table, which the
// tunnel does not own. A truncated answer is retried over TCP. Without
// servers, lookup gives them at each resolution (the nameservers of
// /etc/resolv.conf, which the WAN's DHCP may fill only after boot); its error
// is a failed resolution, retried with the healer's back-off.
// NewDNSResolver returns the resolver that asks servers, or, when there are
// none, the servers lookup returns at each resolution; timeout bounds one
// question.
func NewDNSResolver(servers []netip.AddrPort, lookup func() ([]netip.AddrPort, error), timeout time.Duration) Resolver {
	return &dnsResolver{servers: servers, lookup: lookup, timeout: timeout}
}

type dnsResolver struct {
	servers []netip.AddrPort
	lookup  func() ([]netip.AddrPort, error) // used when servers is empty
	timeout time.Duration
}

// Resolve returns the A records then the AAAA records of host, from the
// first server that answers. NXDOMAIN or no records is an error.
func (r *dnsResolver) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	servers := r.servers
	if len(servers) == 0 && r.lookup != nil {
		var err error
		if servers, err = r.lookup(); err != nil {
			return nil, err
		}
	}
	if len(servers) == 0 {
		return nil, errors.New("no Resolver configured: set Resolver in [Gateway]")
	}
	var errs []error
	for _, srv := range servers {
		addrs, err := r.resolveAt(ctx, srv, host)
		if err == nil {
			return addrs, nil
		}
		errs = append(errs, fmt.Errorf("resolver %v: %w", srv, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func (r *dnsResolver) resolveAt(ctx context.Context, srv netip.AddrPort, host string) ([]netip.Addr, error) {
	type result struct {
		addrs []netip.Addr
		err   error
	}
	qtypes := []uint16{dns.TypeA, dns.TypeAAAA}
	ch := make(chan result, len(qtypes))
	for _, qt := range qtypes {
		go func() {
			a, err := r.query(ctx, srv, host, qt)
			ch <- result{a, err}
		}()
	}
	var v4, v6 []netip.Addr
	var errs []error
	answered := 0
	for range qtypes {
		res := <-ch
		if res.err != nil {
			errs = append(errs, res.err)
			continue
		}
		answered++
		for _, a := range res.addrs {
			if a.Is4() {
				v4 = append(v4, a)
			} else {
				v6 = append(v6, a)
			}
		}
	}
	// A lost A question must not make an IPv6 address the endpoint: on a
	// network without IPv6 (most hotels) the first handshake would go
	// nowhere until the healer moves on. Asked once more, it mostly answers.
	if len(v4) == 0 && len(v6) > 0 && answered < len(qtypes) && ctx.Err() == nil {
		if a, err := r.query(ctx, srv, host, dns.TypeA); err == nil {
			v4 = a
		}
	}
	all := append(v4, v6...)
	if len(all) > 0 {
		return all, nil
	}
	if answered > 0 {
		return nil, fmt.Errorf("no A or AAAA record for %s", host)
	}
	return nil, errors.Join(errs...)
}

func (r *dnsResolver) query(ctx context.Context, srv netip.AddrPort, host string, qt uint16) ([]netip.Addr, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(host), qt)
	m.RecursionDesired = true
	c := &dns.Client{Net: "udp", Timeout: r.timeout}
	in, _, err := c.ExchangeContext(ctx, m, srv.String())
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, _, err = c.ExchangeContext(ctx, m, srv.String())
	}
	if err != nil {
		return nil, err
	}
	switch in.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, fmt.Errorf("%s: no such name (NXDOMAIN)", host)
	default:
		return nil, fmt.Errorf("%s: answer %s", host, dns.RcodeToString[in.Rcode])
	}
	var out []netip.Addr
	for _, rr := range in.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			if a, ok := netip.AddrFromSlice(rr.A.To4()); ok && qt == dns.TypeA {
				out = append(out, a)
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(rr.AAAA.To16()); ok && qt == dns.TypeAAAA && !a.Is4In6() {
				out = append(out, a)
			}
		}
	}
	return out, nil
}
