package dnsfwd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestForwardUDPAndTCP(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			up := startUpstream(t, answerA("192.0.2.7", 300))
			f := startForwarder(t, up.addr, nil)
			r := exchange(t, f, network, query("www.Example.org", dns.TypeA))
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
				t.Fatalf("answer = %v, want one A record", r)
			}
			if a := r.Answer[0].(*dns.A).A.String(); a != "192.0.2.7" {
				t.Errorf("A = %s, want 192.0.2.7", a)
			}
			if got := r.Question[0].Name; got != "www.Example.org." {
				t.Errorf("question name = %q, want the client's spelling www.Example.org.", got)
			}
			// The upstream is asked over the client's transport.
			if got := map[string]int64{"udp": up.udpQ.Load(), "tcp": up.tcpQ.Load()}[network]; got != 1 {
				t.Errorf("upstream %s queries = %d, want 1", network, got)
			}
			// Asked again in another case: from the cache, in the client's spelling.
			r = exchange(t, f, network, query("WWW.example.ORG", dns.TypeA))
			if got := r.Question[0].Name; got != "WWW.example.ORG." {
				t.Errorf("cached answer's question name = %q, want WWW.example.ORG.", got)
			}
			if n := up.udpQ.Load() + up.tcpQ.Load(); n != 1 {
				t.Errorf("upstream asked %d times, want 1 (second answer from the cache)", n)
			}
			waitFor(t, func() bool { return f.Stats().OK == 2 }) // counted just after the write
			s := f.Stats()
			if s.Queries != 2 || s.OK != 2 || s.CacheHits != 1 || s.CacheMisses != 1 || s.InFlight != 0 {
				t.Errorf("stats = %+v, want 2 queries, 2 ok, 1 hit, 1 miss, 0 in flight", s)
			}
		})
	}
}

func TestTCPPipelinedReusesUpstreamConnections(t *testing.T) {
	up := startUpstream(t, answerA("192.0.2.8", 300))
	f := startForwarder(t, up.addr, func(c *Config) { c.CacheSize = -1 })
	c, err := dns.Dial("tcp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 20
	ids := map[uint16]bool{}
	for i := range n { // all written before any is read: pipelined
		m := query(fmt.Sprintf("pipe%d.example", i), dns.TypeA) // distinct: not coalesced
		m.Id = uint16(1000 + i)
		ids[m.Id] = true
		if err := c.WriteMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for range n {
		r, err := c.ReadMsg()
		if err != nil {
			t.Fatalf("read answer: %v", err)
		}
		if !ids[r.Id] || len(r.Answer) != 1 {
			t.Fatalf("unexpected answer %v", r)
		}
		delete(ids, r.Id)
	}
	up.mu.Lock()
	peers := len(up.tcpPeers)
	up.mu.Unlock()
	if up.tcpQ.Load() != n || peers > tcpUpstreams {
		t.Errorf("upstream saw %d TCP queries on %d connections, want %d on at most %d", up.tcpQ.Load(), peers, n, tcpUpstreams)
	}
}

func TestTruncatedRetriedOverTCP(t *testing.T) {
	big := func(network string, r *dns.Msg) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(r)
		if network == "udp" {
			m.Truncated = true
			return m
		}
		for i := range 40 {
			m.Answer = append(m.Answer, &dns.TXT{
				Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
				Txt: []string{strings.Repeat("x", 50) + string(rune('a'+i%26))},
			})
		}
		return m
	}
	up := startUpstream(t, big)
	f := startForwarder(t, up.addr, nil)

	// A client with a large EDNS buffer gets the whole answer fetched over TCP.
	m := query("big.example", dns.TypeTXT)
	m.SetEdns0(65000, false)
	r := exchange(t, f, "udp", m)
	if r.Truncated || len(r.Answer) != 40 {
		t.Fatalf("answer truncated=%v with %d records, want the 40 records fetched over TCP", r.Truncated, len(r.Answer))
	}
	if up.udpQ.Load() != 1 || up.tcpQ.Load() != 1 || f.Stats().TruncatedRetried != 1 {
		t.Errorf("upstream udp=%d tcp=%d, retried=%d; want 1, 1, 1", up.udpQ.Load(), up.tcpQ.Load(), f.Stats().TruncatedRetried)
	}
	// A client without EDNS (512 bytes) gets TC and its TCP retry the whole answer.
	m = query("big.example", dns.TypeTXT)
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if !r.Truncated || len(r.Answer) != 0 {
		t.Errorf("512-byte client: truncated=%v with %d records, want TC and none", r.Truncated, len(r.Answer))
	}
	if r = exchange(t, f, "tcp", m); len(r.Answer) != 40 {
		t.Errorf("TCP retry got %d records, want 40", len(r.Answer))
	}
	waitFor(t, func() bool { return f.Stats().Truncated == 1 })
}

func TestMismatchedAnswersDropped(t *testing.T) {
	type bad struct {
		name string
		edit func(a []byte) []byte
	}
	bads := []bad{
		{"wrong ID", func(a []byte) []byte { a[0] ^= 0xff; return a }},
		{"wrong name", func(a []byte) []byte { a[headerLen+1] ^= 0x01; return a }},
		{"wrong type", func(a []byte) []byte { a[nameEnd(a, headerLen)+1] ^= 0x02; return a }},
		{"wrong class", func(a []byte) []byte { a[nameEnd(a, headerLen)+3] ^= 0x02; return a }},
		{"not a response", func(a []byte) []byte { a[offFlags1] &^= flagQR; return a }},
		{"short", func(a []byte) []byte { return a[:5] }},
	}
	up := rawUpstream(t, func(c *net.UDPConn, from netip.AddrPort, q []byte) {
		for _, b := range bads {
			a := fastAnswer(append([]byte(nil), q...), 60)
			a[len(a)-1] = 66 // 192.0.2.66: must never reach the client
			c.WriteToUDPAddrPort(b.edit(a), from)
		}
		c.WriteToUDPAddrPort(fastAnswer(q, 60), from) // the real one, last
	})
	f := startForwarder(t, up, nil)
	r := exchange(t, f, "udp", query("Mixed.Example", dns.TypeA))
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.1" {
		t.Fatalf("answer %v, want the real one (192.0.2.1)", r.Answer)
	}
	if got := f.Stats().Mismatched; got != uint64(len(bads)) {
		t.Errorf("Mismatched = %d, want %d", got, len(bads))
	}
}

func TestUpstreamDownServFail(t *testing.T) {
	// A closed port (ICMP port unreachable) and a black hole (silence). The
	// closed port stays bound while the test runs, by a socket connected to
	// another port that takes no datagram from the forwarder, so that no other
	// test can take it over in between.
	closed := func(tb testing.TB) netip.AddrPort {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")),
			net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:9")))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { c.Close() })
		return c.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	hole := func(tb testing.TB) netip.AddrPort {
		return rawUpstream(tb, func(*net.UDPConn, netip.AddrPort, []byte) {})
	}
	for name, mk := range map[string]func(testing.TB) netip.AddrPort{"closed port": closed, "black hole": hole} {
		t.Run(name, func(t *testing.T) {
			const timeout = 300 * time.Millisecond
			f := startForwarder(t, mk(t), func(c *Config) { c.Timeout = timeout })
			for _, network := range []string{"udp", "tcp"} {
				start := time.Now()
				r, err := tryExchange(f, network, query("down.example", dns.TypeA), 3*time.Second)
				el := time.Since(start)
				if err != nil {
					t.Fatalf("%s: no answer: %v", network, err)
				}
				if r.Rcode != dns.RcodeServerFailure {
					t.Errorf("%s: rcode %s, want SERVFAIL", network, dns.RcodeToString[r.Rcode])
				}
				if el > timeout+timeout/2 {
					t.Errorf("%s: SERVFAIL after %v, want within about %v", network, el, timeout)
				}
			}
			// Counted just after the write: the client may be faster.
			waitFor(t, func() bool { return f.Stats().ServFail == 2 })
			if s := f.Stats(); s.InFlight != 0 || s.CacheEntries != 0 {
				t.Errorf("stats %+v: want none in flight, nothing cached", s)
			}
		})
	}
}

func TestTTL(t *testing.T) {
	up := startUpstream(t, func(_ string, r *dns.Msg) *dns.Msg {
		ttl := map[string]uint32{"long.example.": 86400, "zero.example.": 0}[r.Question[0].Name]
		return answerA("192.0.2.9", ttl)("", r)
	})
	f := startForwarder(t, up.addr, func(c *Config) { c.MaxTTL = time.Minute })
	ttlOf := func(name string) uint32 {
		r := exchange(t, f, "udp", query(name, dns.TypeA))
		if len(r.Answer) != 1 {
			t.Fatalf("%s: %v", name, r)
		}
		return r.Answer[0].Header().Ttl
	}
	asked := func() int64 { return up.udpQ.Load() }

	if got := ttlOf("long.example"); got != 86400 {
		t.Errorf("first answer TTL %d, want upstream's 86400 passed through", got)
	}
	if got := ttlOf("long.example"); got > 60 || asked() != 1 {
		t.Errorf("cached TTL %d (asked %d), want at most MaxTTL 60 from the cache", got, asked())
	}
	ttlOf("zero.example")
	ttlOf("zero.example")
	if asked() != 3 {
		t.Errorf("TTL 0 answer cached: upstream asked %d times, want 3", asked())
	}
	// How the cached TTLs age and when they expire is the cache's, on a clock the test sets:
	// TestCacheAgesAndExpires.
}

func TestNegativeCaching(t *testing.T) {
	soa := func(name string, ttl, minimum uint32) dns.RR {
		return &dns.SOA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
			Ns: "ns." + name, Mbox: "h." + name, Serial: 1, Refresh: 2, Retry: 3, Expire: 4, Minttl: minimum}
	}
	cases := []struct {
		name   string
		rcode  int
		auth   []dns.RR
		cached bool
		ttl    uint32 // SOA TTL served the second time
	}{
		{"nx.example.", dns.RcodeNameError, []dns.RR{soa("example.", 3600, 30)}, true, 30},
		{"nodata.example.", dns.RcodeSuccess, []dns.RR{soa("example.", 20, 300)}, true, 20},
		{"nosoa.example.", dns.RcodeNameError, nil, false, 0},
		{"fail.example.", dns.RcodeServerFailure, nil, false, 0},
		{"refused.example.", dns.RcodeRefused, nil, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := startUpstream(t, func(_ string, r *dns.Msg) *dns.Msg {
				m := new(dns.Msg)
				m.SetRcode(r, tc.rcode)
				m.Ns = tc.auth
				return m
			})
			f := startForwarder(t, up.addr, nil)
			for i := range 2 {
				r := exchange(t, f, "udp", query(tc.name, dns.TypeAAAA))
				if r.Rcode != tc.rcode {
					t.Fatalf("rcode %d, want %d", r.Rcode, tc.rcode)
				}
				if tc.cached && i == 1 && (len(r.Ns) != 1 || r.Ns[0].Header().Ttl > tc.ttl || r.Ns[0].Header().Ttl < tc.ttl-1) {
					t.Errorf("cached authority %v, want the SOA with TTL min(TTL, MINIMUM) = %d (RFC 2308 section 3)", r.Ns, tc.ttl)
				}
			}
			want := int64(2)
			if tc.cached {
				want = 1
			}
			if got := up.udpQ.Load(); got != want {
				t.Errorf("upstream asked %d times, want %d", got, want)
			}
		})
	}
}

func TestInFlightBound(t *testing.T) {
	const maxIn, extra = 4, 3
	var mu sync.Mutex
	var held [][]byte
	up := rawUpstream(t, func(_ *net.UDPConn, _ netip.AddrPort, q []byte) { // never answers
		mu.Lock()
		held = append(held, q)
		mu.Unlock()
	})
	f := startForwarder(t, up, func(c *Config) { c.MaxInFlight = maxIn; c.Timeout = 500 * time.Millisecond })
	type res struct {
		rcode int
		at    time.Duration
	}
	results := make(chan res, maxIn+extra)
	start := time.Now()
	for i := range maxIn + extra {
		go func() {
			m := query("q"+string(rune('a'+i))+".example", dns.TypeA)
			r, err := tryExchange(f, "udp", m, 3*time.Second)
			if err != nil {
				results <- res{-1, time.Since(start)}
				return
			}
			results <- res{r.Rcode, time.Since(start)}
		}()
		if i == maxIn-1 {
			waitFor(t, func() bool { return f.Stats().InFlight == maxIn })
		}
	}
	refused, servfail := 0, 0
	for range maxIn + extra {
		switch r := <-results; {
		case r.rcode == dns.RcodeRefused && r.at < 400*time.Millisecond:
			refused++ // at once: the table is full
		case r.rcode == dns.RcodeServerFailure && r.at >= 400*time.Millisecond:
			servfail++ // the upstream never answered
		default:
			t.Errorf("rcode %s after %v: want REFUSED at once or SERVFAIL after the timeout", dns.RcodeToString[r.rcode], r.at)
		}
	}
	s := f.Stats()
	if refused != extra || servfail != maxIn || s.RefusedFull != extra || s.InFlight != 0 || s.UpstreamTimeouts != maxIn {
		t.Errorf("%d REFUSED at once, %d SERVFAIL, stats %+v; want %d REFUSED (full), %d timeouts, none in flight", refused, servfail, s, extra, maxIn)
	}
	mu.Lock()
	names := map[string]bool{} // each sent again after no answer, under new IDs
	for _, q := range held {
		names[string(q[headerLen:nameEnd(q, headerLen)])] = true
	}
	if len(names) != maxIn {
		t.Errorf("upstream got %d questions, want %d", len(names), maxIn)
	}
	mu.Unlock()
}

// waitFor waits until cond holds, for at most 3 s. The conditions are counters and states of the
// forwarder's own goroutines, which announce nothing: polling them is the wait on the event.
func waitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(3 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) { // polling: see above
		if time.Now().After(deadline) {
			tb.Fatal("condition not reached within 3 s")
		}
	}
}

func TestClientOutsideLANDropped(t *testing.T) {
	up := startUpstream(t, answerA("192.0.2.10", 60))
	// The LAN is the forwarder's own address; the client asks from 127.0.0.2, outside it.
	f := startForwarder(t, up.addr, func(c *Config) { c.LAN = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} })
	for _, network := range []string{"udp", "tcp"} {
		local := map[string]net.Addr{"udp": &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}, "tcp": &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}[network]
		c := &dns.Client{Net: network, Timeout: 300 * time.Millisecond, Dialer: &net.Dialer{LocalAddr: local, Timeout: 300 * time.Millisecond}}
		if r, _, err := c.Exchange(query("open.example", dns.TypeA), f.Addr().String()); err == nil {
			t.Errorf("%s client outside the LAN got an answer: %v", network, r)
		}
	}
	if s := f.Stats(); s.NonLAN != 2 || s.Dropped != 2 || up.udpQ.Load()+up.tcpQ.Load() != 0 {
		t.Errorf("stats %+v, upstream asked %d: want 2 non-LAN drops and no upstream query", s, up.udpQ.Load()+up.tcpQ.Load())
	}
}

func TestEDNS0PassedThrough(t *testing.T) {
	up := startUpstream(t, func(_ string, r *dns.Msg) *dns.Msg {
		m := answerA("192.0.2.11", 60)("", r)
		if o := r.IsEdns0(); o != nil {
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: "beef"})
		}
		return m
	})
	f := startForwarder(t, up.addr, nil)
	cases := []struct {
		name string
		size uint16
		do   bool
		edns bool
	}{
		{"no EDNS", 0, false, false},
		{"EDNS 1232", 1232, false, true},
		{"EDNS 1232 DO", 1232, true, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := query("edns.example", dns.TypeA)
			if tc.edns {
				m.SetEdns0(tc.size, tc.do)
				m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
			}
			r := exchange(t, f, "udp", m)
			if got := up.udpQ.Load(); got != int64(i+1) {
				t.Errorf("upstream asked %d times, want %d: EDNS presence and DO must key the cache", got, i+1)
			}
			q := up.lastQuery()
			o := q.IsEdns0()
			if (o != nil) != tc.edns {
				t.Fatalf("upstream saw EDNS %v, want %v", o != nil, tc.edns)
			}
			if tc.edns && (o.UDPSize() != tc.size || o.Do() != tc.do || len(o.Option) != 1) {
				t.Errorf("upstream saw OPT size %d DO %v options %v, want %d %v [NSID]", o.UDPSize(), o.Do(), o.Option, tc.size, tc.do)
			}
			ro := r.IsEdns0()
			if (ro != nil) != tc.edns || (ro != nil && len(ro.Option) != 1) {
				t.Errorf("client got OPT %v, want the upstream's passed through", ro)
			}
		})
	}
}

func TestProbe(t *testing.T) {
	cases := []struct {
		name    string
		h       func(string, *dns.Msg) *dns.Msg
		wantErr error
		hint    bool
	}{
		{"answers", answerA("192.0.2.1", 60), nil, false},
		{"refuses", func(_ string, r *dns.Msg) *dns.Msg { return new(dns.Msg).SetRcode(r, dns.RcodeRefused) }, ErrUpstreamIgnores, true},
		{"ignores", func(string, *dns.Msg) *dns.Msg { return nil }, ErrUpstreamIgnores, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := startUpstream(t, tc.h)
			f, err := New(Config{Listen: netip.MustParseAddrPort("127.0.0.1:0"), LAN: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
				Upstream: up.addr, Interface: "lo", Timeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			err = f.Probe(t.Context())
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Probe = %v, want %v", err, tc.wantErr)
			}
			if tc.hint && (!strings.Contains(err.Error(), "Permit all origins") || !strings.Contains(err.Error(), "Settings > DNS > Interface settings")) {
				t.Errorf("error %q does not name Pi-hole's setting", err)
			}
		})
	}
}

func TestConfigAndStartErrors(t *testing.T) {
	lan := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	up := netip.MustParseAddrPort("127.0.0.1:53")
	busy, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cases := []struct {
		name string
		cfg  Config
		want string // in New's error, or Start's if New succeeds
	}{
		{"no listen", Config{LAN: lan, Upstream: up, Interface: "lo"}, "DNSListen"},
		{"no LAN", Config{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Upstream: up, Interface: "lo"}, "LAN"},
		{"no upstream", Config{Listen: netip.MustParseAddrPort("127.0.0.1:0"), LAN: lan, Interface: "lo"}, "DNSUpstream"},
		{"no interface", Config{Listen: netip.MustParseAddrPort("127.0.0.1:0"), LAN: lan, Upstream: up}, "tunnel"},
		{"in-flight too large", Config{Listen: netip.MustParseAddrPort("127.0.0.1:0"), LAN: lan, Upstream: up, Interface: "lo", MaxInFlight: 1 << 16}, "MaxInFlight"},
		{"listen outside LAN", Config{Listen: netip.MustParseAddrPort("127.0.0.1:0"), LAN: []netip.Prefix{netip.MustParsePrefix("192.168.86.0/24")}, Upstream: up, Interface: "lo"},
			"DNSListen 127.0.0.1:0 is not inside LAN 192.168.86.0/24: use the gateway's LAN address"},
		{"address not local", Config{Listen: netip.MustParseAddrPort("192.0.2.200:5353"), LAN: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, Upstream: up, Interface: "lo"}, "is LANInterface up with that address?"},
		{"address in use", Config{Listen: busy.LocalAddr().(*net.UDPAddr).AddrPort(), LAN: lan, Upstream: up, Interface: "lo"}, "already uses it"},
		{"no tunnel device", Config{Listen: netip.MustParseAddrPort("127.0.0.1:0"), LAN: lan, Upstream: up, Interface: "fobgw-none0"}, "no such interface"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := New(tc.cfg)
			if err == nil {
				err = f.Start()
				f.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestStartClose(t *testing.T) {
	up := startUpstream(t, answerA("192.0.2.1", 60))
	f := startForwarder(t, up.addr, nil)
	exchange(t, f, "tcp", query("a.example", dns.TypeA)) // a TCP upstream connection exists
	if err := f.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	done := make(chan struct{})
	go func() { f.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not return: a goroutine is stuck")
	}
	if err := f.Start(); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
	if _, err := tryExchange(f, "udp", query("a.example", dns.TypeA), 200*time.Millisecond); err == nil {
		t.Error("answered after Close")
	}
}

func TestShortReply(t *testing.T) {
	q := query("x.example", dns.TypeA)
	q.Id = 0xbeef
	q.CheckingDisabled = true
	for _, edns := range []bool{false, true} {
		if edns {
			q.SetEdns0(4096, true)
			q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
		}
		b, _ := q.Pack()
		pq, _ := parseMessage(b)
		r := new(dns.Msg)
		if err := r.Unpack(shortReply(b, pq, rcodeServFail)); err != nil {
			t.Fatal(err)
		}
		if r.Id != 0xbeef || !r.Response || r.Rcode != dns.RcodeServerFailure || !r.CheckingDisabled || !r.RecursionDesired ||
			len(r.Question) != 1 || r.Question[0].Name != "x.example." {
			t.Errorf("short reply %v", r)
		}
		if o := r.IsEdns0(); (o != nil) != edns || (o != nil && (!o.Do() || len(o.Option) != 0 || o.UDPSize() != ednsUDPSize)) {
			t.Errorf("query with EDNS %v: reply's OPT %v, want a bare one with DO only with EDNS", edns, o)
		}
	}
}

func TestIdenticalQuestionsCoalesced(t *testing.T) {
	release := make(chan struct{})
	up := startUpstream(t, func(_ string, r *dns.Msg) *dns.Msg {
		<-release // hold the first answer until every client has asked
		return answerA("192.0.2.12", 60)("", r)
	})
	f := startForwarder(t, up.addr, nil)
	const n = 8
	type res struct {
		id   uint16
		name string
		r    *dns.Msg
		err  error
	}
	results := make(chan res, n)
	for i := range n {
		name := []string{"same.example", "SAME.example", "Same.Example"}[i%3]
		go func() {
			m := query(name, dns.TypeA)
			r, err := tryExchange(f, "udp", m, 3*time.Second)
			results <- res{m.Id, dns.Fqdn(name), r, err}
		}()
	}
	waitFor(t, func() bool { return f.Stats().CacheMisses == n })
	close(release)
	for range n {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.r.Id != r.id || r.r.Question[0].Name != r.name || len(r.r.Answer) != 1 {
			t.Errorf("answer %v to query %d %s", r.r, r.id, r.name)
		}
	}
	if got, s := up.udpQ.Load(), f.Stats(); got != 1 || s.Coalesced != n-1 || s.InFlight != 0 {
		t.Errorf("upstream asked %d times, stats %+v; want once, %d coalesced, none in flight", got, s, n-1)
	}
}

func TestUpstreamSourcePortsRotate(t *testing.T) {
	var mu sync.Mutex
	ports := map[string]bool{} // protected by mu
	dials := 0                 // protected by mu
	up := startUpstream(t, answerA("192.0.2.14", 0))
	cfg := Config{Listen: netip.MustParseAddrPort("127.0.0.1:0"), LAN: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Upstream: up.addr, Interface: "lo", Timeout: 100 * time.Millisecond,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			c, err := loopbackDial(ctx, network, address)
			if err == nil {
				mu.Lock()
				ports[c.LocalAddr().String()] = true
				dials++
				mu.Unlock()
			}
			return c, err
		}}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.rotateQueries = 3
	dialled := func() int {
		mu.Lock()
		defer mu.Unlock()
		return dials
	}
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before := 0
	for i := range 60 {
		if i%10 == 0 {
			before = dialled()
		}
		r := exchange(t, f, "udp", query(fmt.Sprintf("r%d.example", i), dns.TypeA))
		if len(r.Answer) != 1 {
			t.Fatalf("query %d: %v", i, r)
		}
		if i%10 == 9 {
			// Ten queries round-robin over the sockets gave at least one of them its third since it
			// was dialled: a tick of the sweeper, during the ten or after, replaced it, dialling
			// from a new port.
			waitFor(t, func() bool { return dialled() > before })
		}
	}
	mu.Lock()
	n := len(ports)
	mu.Unlock()
	if n <= udpUpstreams {
		t.Errorf("upstream sockets used %d source ports, want more than %d: sockets not rotated", n, udpUpstreams)
	}
	// A query sent again (a slow machine) has its first answer arrive late, on the socket it was
	// sent from, retired or not, and counted as mismatched: none may be lost.
	waitFor(t, func() bool { s := f.Stats(); return s.Mismatched >= s.Retransmits })
	if s := f.Stats(); s.UpstreamTimeouts != 0 || s.Mismatched != s.Retransmits {
		t.Errorf("stats %+v: rotation lost answers", s)
	}
}
