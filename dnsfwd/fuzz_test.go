package dnsfwd

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func packed(tb testing.TB, m *dns.Msg) []byte {
	b, err := m.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func seedQueries(tb testing.TB) [][]byte {
	a := query("www.example.org", dns.TypeA)
	e := query("EDNS.example", dns.TypeAAAA)
	e.SetEdns0(1232, true)
	cd := query("cd.example", dns.TypeMX)
	cd.CheckingDisabled = true
	two := query("two.example", dns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	notify := query("zone.example", dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	return [][]byte{packed(tb, a), packed(tb, e), packed(tb, cd), packed(tb, two), packed(tb, notify),
		{}, make([]byte, headerLen), {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1}}
}

// FuzzRequest drives arbitrary client messages through the request path, over UDP and TCP, against a
// live upstream: no panic, in-flight within its bound, the cache within its size.
func FuzzRequest(f *testing.F) {
	for _, s := range seedQueries(f) {
		f.Add(s)
	}
	up := rawUpstream(f, func(c *net.UDPConn, from netip.AddrPort, q []byte) {
		switch len(q) % 3 {
		case 0:
			c.WriteToUDPAddrPort(fastAnswer(q, uint32(len(q))), from)
		case 1: // answered twice: the second is unknown by then
			a := fastAnswer(q, 5)
			c.WriteToUDPAddrPort(a, from)
			c.WriteToUDPAddrPort(a, from)
		} // case 2: never answered
	})
	const maxIn, size = 8, 32
	fw := startForwarder(f, up, func(c *Config) { c.MaxInFlight = maxIn; c.CacheSize = size; c.Timeout = 50 * time.Millisecond })
	sink := drainSink(f)
	a, b := net.Pipe()
	f.Cleanup(func() { a.Close(); b.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			if _, err := b.Read(buf); err != nil {
				return
			}
		}
	}()
	udp := client{udp: fw.udp[0], addr: sink}
	tcp := client{tcp: newTCPClient(a, &fw.st)}
	f.Cleanup(func() { a.Close(); tcp.tcp.stop() })
	var out []byte
	f.Fuzz(func(t *testing.T, msg []byte) {
		out = fw.handle(append([]byte(nil), msg...), out, udp)
		out = fw.handle(append([]byte(nil), msg...), out, tcp)
		s := fw.Stats()
		if s.InFlight < 0 || s.InFlight > maxIn {
			t.Fatalf("in flight %d, bound %d", s.InFlight, maxIn)
		}
		if s.CacheEntries > cacheShards*((size+cacheShards-1)/cacheShards) {
			t.Fatalf("cache holds %d entries, size %d", s.CacheEntries, size)
		}
		if s.CacheBytes > DefaultCacheBytes {
			t.Fatalf("cache holds %d bytes, budget %d", s.CacheBytes, DefaultCacheBytes)
		}
	})
}

// FuzzAnswer feeds arbitrary upstream answers to the parsing and caching code: no panic, and a cached
// answer renders to its own length with every TTL inside it.
func FuzzAnswer(f *testing.F) {
	for _, s := range seedQueries(f) {
		f.Add(s)
	}
	r := query("neg.example", dns.TypeA)
	r.Response, r.Rcode = true, dns.RcodeNameError
	r.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "example.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
		Ns: "ns.example.", Mbox: "h.example.", Minttl: 30}}
	r.SetEdns0(1232, true)
	f.Add(packed(f, r))
	f.Add(fastAnswer(packed(f, query("a.example", dns.TypeA)), 60))
	c := newCache(4, 16*(maxCacheEntry+1024), time.Hour)
	f.Fuzz(func(t *testing.T, msg []byte) {
		q, ok := parseMessage(msg)
		if !ok {
			return
		}
		if q.end > len(msg) || q.udpMax < minUDPSize {
			t.Fatalf("question end %d of %d, udpMax %d", q.end, len(msg), q.udpMax)
		}
		var info rrInfo
		if !scanAnswer(msg, q.end, &info) {
			return
		}
		for _, r := range info.ttls {
			if int(r.off)+4 > len(msg) {
				t.Fatalf("TTL offset %d beyond message of %d", r.off, len(msg))
			}
		}
		if q.edns {
			n := len(msg)
			msg = stripOptions(msg, q.opt)
			if q2, ok := parseMessage(msg); len(msg) > n || !ok || q2.end != q.end || q2.edns != q.edns || q2.udpMax != q.udpMax {
				t.Fatalf("stripOptions: %d bytes from %d, question %+v, was %+v", len(msg), n, q2, q)
			}
		}
		var kb [maxKeyLen]byte
		key := cacheKey(&kb, msg, &q)
		c.put(string(key), msg, &info, 0)
		if e := c.get(key, 0); e != nil {
			// The entry may be an earlier input's with the same question (the cache is shared).
			if got := e.render(nil, msg, q.end, 0); len(got) != len(e.msg) {
				t.Fatalf("rendered %d bytes from %d", len(got), len(e.msg))
			}
		}
	})
}

// FuzzQueryOracle checks the forwarder's query parsing against miekg/dns's Unpack: a message that
// miekg/dns cannot unpack is never forwarded nor served from the cache (the request path's miss and
// hit counters do not move), and one that fobgw serves unpacks to one question, no answer or
// authority record and at most the OPT, before and after its options are stripped.
func FuzzQueryOracle(f *testing.F) {
	for _, s := range seedQueries(f) {
		f.Add(s)
	}
	for _, tc := range malformedQueries {
		f.Add(tc.msg)
	}
	for _, tc := range wellFormedQueries {
		f.Add(tc.msg)
	}
	up := rawUpstream(f, func(c *net.UDPConn, from netip.AddrPort, q []byte) {
		c.WriteToUDPAddrPort(fastAnswer(q, 60), from)
	})
	fw := startForwarder(f, up, func(c *Config) { c.CacheSize = 64; c.Timeout = 50 * time.Millisecond })
	sink := drainSink(f)
	udp := client{udp: fw.udp[0], addr: sink}
	var out []byte
	f.Fuzz(func(t *testing.T, msg []byte) {
		oracle := new(dns.Msg).Unpack(msg)
		q, shape := parseQuery(msg)
		if shape == queryOK {
			if oracle != nil {
				t.Fatalf("fobgw serves a query miekg/dns rejects (%v): %x", oracle, msg)
			}
			m := new(dns.Msg)
			m.Unpack(msg)
			if len(m.Question) != 1 || len(m.Answer)+len(m.Ns) != 0 || len(m.Extra) > 1 || (len(m.Extra) == 1) != q.edns {
				t.Fatalf("served query unpacks to %v", m)
			}
			if q.edns {
				s := stripOptions(append([]byte(nil), msg...), q.opt)
				if err := new(dns.Msg).Unpack(s); err != nil {
					t.Fatalf("stripped query does not unpack: %v: %x", err, s)
				}
				if _, shape := parseQuery(s); shape != queryOK {
					t.Fatalf("stripped query no longer parses: %x", s)
				}
			}
		}
		before := fw.Stats()
		out = fw.handle(append([]byte(nil), msg...), out, udp)
		after := fw.Stats()
		moved := after.CacheMisses != before.CacheMisses || after.CacheHits != before.CacheHits
		if oracle != nil && moved {
			t.Fatalf("a query miekg/dns rejects (%v) was forwarded or served from the cache: %x", oracle, msg)
		}
	})
}

// drainSink is a loopback UDP address whose datagrams are read and dropped:
// where the fuzz targets' answers go.
func drainSink(tb testing.TB) netip.AddrPort {
	sink, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sink.Close() })
	go func() {
		b := make([]byte, 65535)
		for {
			if _, _, err := sink.ReadFrom(b); err != nil {
				return
			}
		}
	}()
	return sink.LocalAddr().(*net.UDPAddr).AddrPort()
}
