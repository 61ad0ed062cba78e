package tunsock

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"time"

	"github.com/miekg/dns"
)

// Probe asks the DNS server at the other end of c, a UDP socket (bound to
// the tunnel by its dialer), for the root's NS records and returns the first
// reply whose ID and question match the query; anything else that arrives
// is skipped. When ctx has a deadline the query is sent again halfway to
// it, so that one lost datagram does not fail the probe. Errors are those of
// the socket: errors.Is(err, syscall.ECONNREFUSED) after an ICMP port
// unreachable (which also proves the path works), ctx's error when it ends
// first (context.DeadlineExceeded when its deadline passed). The caller judges the reply's RCODE.
func Probe(ctx context.Context, c net.Conn) (*dns.Msg, error) {
	deadline, hasDeadline := ctx.Deadline()
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()

	m := new(dns.Msg)
	m.SetQuestion(".", dns.TypeNS)
	m.Id = uint16(rand.Uint32())
	q, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("pack the probe query: %w", err)
	}
	sends := 1
	var resend time.Time
	if hasDeadline {
		sends = 2
		resend = time.Now().Add(time.Until(deadline) / 2)
	}
	sent := 0
	buf := make([]byte, dns.MaxMsgSize)
	for {
		if sent == 0 || (sent < sends && !time.Now().Before(resend)) {
			if _, err := c.Write(q); err != nil {
				return nil, err
			}
			sent++
		}
		switch {
		case sent < sends:
			c.SetReadDeadline(resend)
		case hasDeadline:
			c.SetReadDeadline(deadline)
		default:
			c.SetReadDeadline(time.Time{})
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := c.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && sent < sends && ctx.Err() == nil {
				continue
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if cerr := ctx.Err(); cerr != nil {
					return nil, cerr
				}
				if hasDeadline && !time.Now().Before(deadline) {
					return nil, context.DeadlineExceeded // ctx's timer has not fired yet
				}
			}
			return nil, err
		}
		r := new(dns.Msg)
		if r.Unpack(buf[:n]) != nil || r.Id != m.Id || !r.Response || len(r.Question) != 1 ||
			r.Question[0].Name != "." || r.Question[0].Qtype != dns.TypeNS {
			continue // not ours: keep waiting
		}
		return r, nil
	}
}
