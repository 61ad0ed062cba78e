package portal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Resolver resolves a host name to its addresses. The gateway's resolver
// for the endpoint's name (through Resolver, the local ISP's) is one;
// ServerResolver is another.
type Resolver interface {
	Resolve(ctx context.Context, host string) ([]netip.Addr, error)
}

// ServerResolver asks these DNS servers, in order, over plain UDP (TCP when
// an answer is truncated), from sockets that follow the main routing table.
// The system's resolver configuration gives no server; /etc/hosts still
// answers first, as it does for every program.
type ServerResolver []netip.AddrPort

// Resolve returns host's IPv4 then IPv6 addresses from the first server that
// answers.
func (s ServerResolver) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if len(s) == 0 {
		return nil, errors.New("no DNS server to ask")
	}
	// A rooted name: no search domain of resolv.conf is tried.
	name := strings.TrimSuffix(host, ".") + "."
	var errs []error
	for _, srv := range s {
		r := &net.Resolver{
			PreferGo:     true,
			StrictErrors: true,
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, srv.String())
			},
		}
		addrs, err := r.LookupNetIP(ctx, "ip", name)
		if err == nil && len(addrs) > 0 {
			return sortV4First(addrs), nil
		}
		var de *net.DNSError
		switch {
		case err == nil:
			err = fmt.Errorf("DNS server %v: no address for %s", srv, host)
		case errors.As(err, &de):
			// It names the server of resolv.conf that Dial was given, not srv.
			de.Server = srv.String()
		default:
			err = fmt.Errorf("DNS server %v: %w", srv, err)
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func sortV4First(addrs []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if a.Unmap().Is4() {
			out = append(out, a.Unmap())
		}
	}
	for _, a := range addrs {
		if !a.Unmap().Is4() {
			out = append(out, a)
		}
	}
	return out
}

// maxHeaderBytes bounds an answer's header.
const maxHeaderBytes = 16 << 10

// NewClient returns the HTTP client for checks from the gateway's own WAN
// path: names resolved by r only (never the system resolver, never the
// tunnel), connections dialled as any socket of the gateway (the main
// table), no proxy from the environment, no connection kept between checks
// (a portal that appears intercepts the next one), redirects not followed,
// and timeout over each request (0: DefaultTimeout).
func NewClient(r Resolver, timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialVia(r),
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: maxHeaderBytes,
	}
	return &http.Client{Transport: tr, Timeout: timeout, CheckRedirect: noRedirect}
}

// dialVia dials host:port at the addresses r gives for host, in order, until
// one connects.
func dialVia(r Resolver) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		var d net.Dialer
		if _, err := netip.ParseAddr(host); err == nil {
			return d.DialContext(ctx, network, addr)
		}
		addrs, err := r.Resolve(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
		var errs []error
		for _, a := range addrs {
			c, err := d.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		if len(errs) == 0 {
			return nil, fmt.Errorf("resolve %s: no address", host)
		}
		return nil, errors.Join(errs...)
	}
}
