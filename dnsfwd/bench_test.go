package dnsfwd

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// benchUpstream is a loopback UDP upstream that answers every query with one A record and allocates
// nothing, so that a benchmark's allocations are the forwarder's and the client's.
func benchUpstream(tb testing.TB) netip.AddrPort {
	tb.Helper()
	return serveUDP(tb, func(c *net.UDPConn, from netip.AddrPort, q []byte) {
		if nameEnd(q, headerLen) < 0 {
			return
		}
		c.WriteToUDPAddrPort(fastAnswer(q, 3600), from)
	})
}

// BenchmarkForward measures queries/s through the forwarder on loopback: clients and upstream in
// process, each client goroutine with one query outstanding at a time.
//
//	go test -run XXX -bench Forward -benchtime 3s ./dnsfwd/
func BenchmarkForward(b *testing.B) {
	cases := []struct {
		name   string
		cache  int
		unique bool // every query a new name
	}{
		{"cached", 0, false},
		{"uncached-same", -1, false},  // cache off, one name: identical questions in flight coalesce
		{"uncached-unique", -1, true}, // cache off, every query a new name: every query forwarded
		{"miss-insert", 1000, true},   // cache on, every query a miss inserted (and evicting)
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			f := startForwarder(b, benchUpstream(b), func(c *Config) { c.CacheSize = tc.cache })
			var seq atomic.Uint64
			b.SetParallelism(4)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(f.Addr()))
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				m := query("bench-000000000.example", dns.TypeA)
				m.SetEdns0(1232, false)
				q, _ := m.Pack()
				r := make([]byte, 2048)
				for pb.Next() {
					n := seq.Add(1)
					binary.BigEndian.PutUint16(q, uint16(n))
					if tc.unique {
						_ = fmt.Appendf(q[headerLen+7:headerLen+7], "%09d", n%1e9) // in place: the label is 9 digits
					}
					c.SetDeadline(time.Now().Add(2 * time.Second))
					if _, err := c.Write(q); err != nil {
						b.Error(err)
						return
					}
					for {
						k, err := c.Read(r)
						if err != nil {
							b.Errorf("query %d: %v", n, err)
							return
						}
						if k >= headerLen && binary.BigEndian.Uint16(r) == uint16(n) {
							break
						}
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "queries/s")
		})
	}
}
