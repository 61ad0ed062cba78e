package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
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

// readResolvConf returns the nameservers listed in a resolv.conf file
// (resolv.conf(5), read by miekg/dns), on port 53; addresses with a zone are
// left out.
func readResolvConf(path string) ([]netip.AddrPort, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var out []netip.AddrPort
	for _, s := range cc.Servers {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			continue
		}
		out = append(out, netip.AddrPortFrom(a.Unmap(), dnsPort))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s lists no usable nameserver (yet: is the WAN's DHCP done?)", path)
	}
	return out, nil
}
