package dnsfwd

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// writeTCPQuery writes m to c framed with its 2-byte length (RFC 1035 4.2.2).
func writeTCPQuery(tb testing.TB, c net.Conn, m *dns.Msg) {
	tb.Helper()
	b := packed(tb, m)
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)); err != nil {
		tb.Fatalf("write TCP query: %v", err)
	}
}

// A LAN client that pipelines queries over TCP and never reads its answers stalls nobody else:
// neither another TCP client, nor a UDP client whose question is coalesced with one of its own.
func TestStuckTCPClientStallsNobody(t *testing.T) {
	const flood = 300 // answers of about 20 KiB each: far more than the stuck client's socket buffers
	joined := make(chan struct{})
	join := sync.OnceFunc(func() { close(joined) })
	txt := make([]string, 80)
	for i := range txt {
		txt[i] = strings.Repeat("x", 250)
	}
	up := startUpstream(t, func(network string, r *dns.Msg) *dns.Msg {
		name := r.Question[0].Name
		switch {
		case strings.HasPrefix(name, "flood"):
			m := new(dns.Msg)
			m.SetReply(r)
			m.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: txt}}
			return m
		case name == "shared.example.":
			<-joined // in flight until the stuck client has joined it
		}
		return answerA("192.0.2.16", 60)(network, r)
	})
	t.Cleanup(join) // before the upstream stops, also when the test fails early
	const timeout = time.Second
	f := startForwarder(t, up.addr, func(c *Config) { c.CacheSize = -1; c.Timeout = timeout })

	// The stuck client: a small receive buffer, so that its window closes at once.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) })
	}}
	stuck, err := d.Dial("tcp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	for i := range flood {
		writeTCPQuery(t, stuck, query(fmt.Sprintf("flood%d.example", i), dns.TypeTXT))
	}
	// Every flood question finished upstream, and the stuck client's buffers and queue so full that
	// answers to it were dropped.
	waitFor(t, func() bool { s := f.Stats(); return s.Queries == flood && s.InFlight == 0 && s.Dropped > 0 })

	// A UDP client leads a question; the stuck client joins it as a follower.
	type res struct {
		r   *dns.Msg
		err error
		at  time.Duration
	}
	udpRes := make(chan res, 1)
	start := time.Now()
	go func() {
		r, err := tryExchange(f, "udp", query("shared.example", dns.TypeA), 3*time.Second)
		udpRes <- res{r, err, time.Since(start)}
	}()
	waitFor(t, func() bool { return up.udpQ.Load() == 1 })
	writeTCPQuery(t, stuck, query("shared.example", dns.TypeA))
	waitFor(t, func() bool { return f.Stats().Coalesced == 1 })
	join()

	// Another TCP client is answered at once, not after the stuck client's write times out.
	tcpStart := time.Now()
	r, err := tryExchange(f, "tcp", query("other.example", dns.TypeA), 3*time.Second)
	if el := time.Since(tcpStart); err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || el > timeout/2 {
		t.Errorf("other TCP client: answer %v, err %v after %v; want the A record within %v", r, err, el, timeout/2)
	}
	u := <-udpRes
	if u.err != nil || u.r.Rcode != dns.RcodeSuccess || len(u.r.Answer) != 1 || u.at > timeout {
		t.Errorf("coalesced UDP client: answer %v, err %v after %v; want the A record within %v", u.r, u.err, u.at, timeout)
	}
}

// A client that pipelines many queries answered from the cache, and reads its answers only once all
// are sent, gets every one: its own answers wait for room in its queue rather than being dropped.
func TestTCPPipelinedCacheHitsAllAnswered(t *testing.T) {
	const n = 4 * tcpQueueLen
	up := startUpstream(t, answerA("192.0.2.20", 300))
	f := startForwarder(t, up.addr, nil)
	exchange(t, f, "udp", query("hit.example", dns.TypeA)) // now cached
	c, err := dns.Dial("tcp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range n {
		m := query("hit.example", dns.TypeA)
		m.Id = uint16(i)
		if err := c.WriteMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for i := range n {
		r, err := c.ReadMsg()
		if err != nil {
			t.Fatalf("answer %d of %d: %v", i+1, n, err)
		}
		if r.Id != uint16(i) || len(r.Answer) != 1 {
			t.Fatalf("answer %d: %v", i, r)
		}
	}
	if s := f.Stats(); s.Dropped != 0 || up.udpQ.Load()+up.tcpQ.Load() != 1 {
		t.Errorf("stats %+v, upstream asked %d times: want nothing dropped, one upstream query", s, up.udpQ.Load()+up.tcpQ.Load())
	}
}

// Answers above maxCacheEntry (TCP answers may be 64 KiB) are forwarded but not cached.
func TestLargeAnswersNotCached(t *testing.T) {
	txt := make([]string, 24) // 24 strings of 250 bytes: about 6 KiB
	for i := range txt {
		txt[i] = strings.Repeat("y", 250)
	}
	up := startUpstream(t, func(network string, r *dns.Msg) *dns.Msg {
		if r.Question[0].Name != "big.example." {
			return answerA("192.0.2.17", 60)(network, r)
		}
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "big.example.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: txt}}
		return m
	})
	f := startForwarder(t, up.addr, nil)
	for range 2 {
		if r := exchange(t, f, "tcp", query("big.example", dns.TypeTXT)); len(r.Answer) != 1 {
			t.Fatalf("big answer %v", r)
		}
		exchange(t, f, "tcp", query("small.example", dns.TypeA))
	}
	if got := up.tcpQ.Load(); got != 3 {
		t.Errorf("upstream asked %d times, want 3: the ~6 KiB answer twice, the small one once (then cached)", got)
	}
}

// A UDP query above maxUDPQuery is dropped, not cut to that size and forwarded.
func TestOversizedUDPQueryDropped(t *testing.T) {
	var asked atomic.Int64
	up := rawUpstream(t, func(c *net.UDPConn, from netip.AddrPort, q []byte) {
		asked.Add(1)
		c.WriteToUDPAddrPort(fastAnswer(q, 60), from)
	})
	f := startForwarder(t, up, nil)
	// sized returns a query of exactly n bytes: EDNS padding (RFC 7830) fills it.
	sized := func(name string, n int) []byte {
		m := query(name, dns.TypeA)
		m.SetEdns0(1232, false)
		base := len(packed(t, m)) + 4 // + the padding option's code and length
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_PADDING{Padding: make([]byte, n-base)})
		b := packed(t, m)
		if len(b) != n {
			t.Fatalf("query of %d bytes, want %d", len(b), n)
		}
		return b
	}
	ask := func(b []byte) error {
		c, err := net.Dial("udp", f.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(b)
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err = c.Read(make([]byte, 2048))
		return err
	}
	if err := ask(sized("fits.example", maxUDPQuery)); err != nil || asked.Load() != 1 {
		t.Fatalf("%d-byte query: %v, upstream asked %d times; want an answer", maxUDPQuery, err, asked.Load())
	}
	if err := ask(sized("over.example", maxUDPQuery+1)); err == nil || asked.Load() != 1 {
		t.Errorf("%d-byte query: err %v, upstream asked %d times; want no answer and nothing forwarded", maxUDPQuery+1, err, asked.Load()-1)
	}
	if s := f.Stats(); s.Dropped != 1 || s.Queries != 2 {
		t.Errorf("stats %+v, want 2 queries, 1 dropped", s)
	}
}

// Client cookies (RFC 7873) and client subnets (RFC 7871) are not forwarded, and those of the
// upstream's answer reach no client: a cached or coalesced answer would carry another client's.
func TestCookieAndSubnetStripped(t *testing.T) {
	subnet := func() *dns.EDNS0_SUBNET {
		return &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, SourceScope: 24, Address: net.IPv4(192, 168, 86, 0).To4()}
	}
	nsid := func() *dns.EDNS0_NSID { return &dns.EDNS0_NSID{Code: dns.EDNS0NSID} }
	up := startUpstream(t, func(network string, r *dns.Msg) *dns.Msg {
		m := answerA("192.0.2.18", 60)(network, r)
		if o := m.IsEdns0(); o != nil {
			o.Option = append(o.Option, subnet(), &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708a1a2a3a4a5a6a7a8"}, nsid())
		}
		return m
	})
	f := startForwarder(t, up.addr, nil)
	codes := func(o *dns.OPT) []uint16 {
		var c []uint16
		for _, e := range o.Option {
			c = append(c, e.Option())
		}
		return c
	}
	for i, network := range []string{"udp", "tcp", "udp"} { // the third is answered from the cache
		t.Run(fmt.Sprint(i, network), func(t *testing.T) {
			m := query(map[string]string{"udp": "cookie.example", "tcp": "tcp.cookie.example"}[network], dns.TypeA)
			m.SetEdns0(1232, true)
			cookie := strings.Repeat(fmt.Sprint(i+1), 16)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: cookie}, subnet(), nsid())
			r := exchange(t, f, network, m)
			if o := up.lastQuery().IsEdns0(); o == nil || !o.Do() || len(o.Option) != 1 || o.Option[0].Option() != dns.EDNS0NSID {
				t.Errorf("upstream saw OPT %v, want DO and NSID only", o)
			}
			if o := r.IsEdns0(); o == nil || len(o.Option) != 1 || o.Option[0].Option() != dns.EDNS0NSID || len(r.Answer) != 1 {
				t.Errorf("client got %v with options %v, want the A record and NSID only", r, codes(o))
			}
		})
	}
	if got := up.udpQ.Load() + up.tcpQ.Load(); got != 2 {
		t.Errorf("upstream asked %d times, want 2", got)
	}
}

// Error answers and answers cut to TC echo an OPT record to EDNS clients (RFC 6891 sections 6.1.1, 7),
// with the DO bit of the query (RFC 3225).
func TestErrorAndTruncatedRepliesEchoOPT(t *testing.T) {
	big := func(network string, r *dns.Msg) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(r)
		for i := range 12 {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
				Txt: []string{strings.Repeat("z", 200) + fmt.Sprint(i)}})
		}
		return m
	}
	cases := []struct {
		name  string
		up    func(testing.TB) netip.AddrPort
		edit  func(*dns.Msg)
		rcode int
		tc    bool
	}{
		{"SERVFAIL", func(tb testing.TB) netip.AddrPort {
			return rawUpstream(tb, func(*net.UDPConn, netip.AddrPort, []byte) {})
		},
			nil, dns.RcodeServerFailure, false},
		{"NOTIMP", func(tb testing.TB) netip.AddrPort { return startUpstream(tb, answerA("192.0.2.19", 60)).addr },
			func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }, dns.RcodeNotImplemented, false},
		{"TC", func(tb testing.TB) netip.AddrPort { return startUpstream(tb, big).addr }, nil, dns.RcodeSuccess, true},
	}
	for _, tc := range cases {
		for _, do := range []bool{false, true} {
			t.Run(fmt.Sprint(tc.name, " DO ", do), func(t *testing.T) {
				f := startForwarder(t, tc.up(t), func(c *Config) { c.Timeout = 200 * time.Millisecond })
				m := query("opt.example", dns.TypeTXT)
				m.SetEdns0(1232, do)
				if tc.edit != nil {
					tc.edit(m)
				}
				r := exchange(t, f, "udp", m)
				if r.Rcode != tc.rcode || r.Truncated != tc.tc {
					t.Fatalf("rcode %s TC %v, want %s TC %v", dns.RcodeToString[r.Rcode], r.Truncated, dns.RcodeToString[tc.rcode], tc.tc)
				}
				if o := r.IsEdns0(); o == nil || o.Do() != do || o.Version() != 0 || len(o.Option) != 0 {
					t.Errorf("OPT %v, want a bare OPT with DO %v", o, do)
				}
				// Without EDNS in the query, none in the answer.
				m.Extra = nil
				if r := exchange(t, f, "udp", m); r.IsEdns0() != nil {
					t.Errorf("client without EDNS got OPT %v", r.IsEdns0())
				}
			})
		}
	}
}

// Negative answers are kept no longer than any record they carry: the CNAME chain of the answer
// section too (RFC 2308 section 5), and NODATA after a CNAME is negative.
func TestScanAnswerNegativeTTL(t *testing.T) {
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: "example.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 3600},
		Ns: "ns.example.", Mbox: "h.example.", Serial: 1, Minttl: 30}
	cname := func(ttl uint32) dns.RR {
		return &dns.CNAME{Hdr: dns.RR_Header{Name: "a.example.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl}, Target: "b.example."}
	}
	a := func(ttl uint32) dns.RR {
		return &dns.A{Hdr: dns.RR_Header{Name: "b.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: net.IPv4(192, 0, 2, 1)}
	}
	cases := []struct {
		name  string
		rcode int
		an    []dns.RR
		ns    []dns.RR
		keep  uint32
	}{
		{"NXDOMAIN", dns.RcodeNameError, nil, []dns.RR{soa}, 30},
		{"NXDOMAIN after CNAME", dns.RcodeNameError, []dns.RR{cname(5)}, []dns.RR{soa}, 5},
		{"NXDOMAIN after CNAME, no SOA", dns.RcodeNameError, []dns.RR{cname(5)}, nil, 0},
		{"NODATA after CNAME", dns.RcodeSuccess, []dns.RR{cname(300)}, []dns.RR{soa}, 30},
		{"NODATA after short CNAME", dns.RcodeSuccess, []dns.RR{cname(7)}, []dns.RR{soa}, 7},
		{"NODATA after CNAME, no SOA", dns.RcodeSuccess, []dns.RR{cname(300)}, nil, 0},
		{"positive via CNAME", dns.RcodeSuccess, []dns.RR{cname(300), a(40)}, nil, 40},
		{"positive via CNAME, SOA ignored", dns.RcodeSuccess, []dns.RR{cname(300), a(40)}, []dns.RR{soa}, 40},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := query("a.example", dns.TypeA)
			m.Response, m.Rcode, m.Answer, m.Ns = true, tc.rcode, tc.an, tc.ns
			b := packed(t, m)
			q, ok := parseMessage(b)
			var info rrInfo
			if !ok || !scanAnswer(b, q.end, &info) {
				t.Fatal("does not parse")
			}
			if info.keep != tc.keep {
				t.Errorf("kept %d s, want %d", info.keep, tc.keep)
			}
		})
	}
}
