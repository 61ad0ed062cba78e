package dnsfwd

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// upstream is an in-process DNS server on 127.0.0.1, UDP and TCP on the same port, answering with
// handler and counting what it was asked.
type upstream struct {
	addr     netip.AddrPort
	udpQ     atomic.Int64 // queries received over UDP
	tcpQ     atomic.Int64 // queries received over TCP
	mu       sync.Mutex
	tcpPeers map[string]bool // protected by mu: TCP client addresses seen
	last     *dns.Msg        // protected by mu: the last query received
}

// startUpstream starts an upstream answering with h (which sees the transport, "udp" or "tcp").
func startUpstream(tb testing.TB, h func(network string, r *dns.Msg) *dns.Msg) *upstream {
	tb.Helper()
	u := &upstream{tcpPeers: map[string]bool{}}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		network := w.RemoteAddr().Network()
		u.mu.Lock()
		u.last = r.Copy()
		if network == "tcp" {
			u.tcpQ.Add(1)
			u.tcpPeers[w.RemoteAddr().String()] = true
		} else {
			u.udpQ.Add(1)
		}
		u.mu.Unlock()
		if m := h(network, r); m != nil {
			w.WriteMsg(m)
		}
	})
	// One port for UDP and TCP: the UDP port the kernel picks may be held by a TCP socket of an
	// earlier test's client, so a few are tried.
	var pc net.PacketConn
	var l net.Listener
	for try := 0; ; try++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("upstream: listen UDP: %v", err)
		}
		u.addr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
		if l, err = net.Listen("tcp", u.addr.String()); err == nil {
			break
		}
		pc.Close()
		if try == 8 {
			tb.Fatalf("upstream: listen TCP on %s: %v", u.addr, err)
		}
	}
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: l, Handler: handler}} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go s.ActivateAndServe()
		<-started
		tb.Cleanup(func() { s.Shutdown() })
	}
	return u
}

func (u *upstream) lastQuery() *dns.Msg {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

// answerA answers every A query with ip and ttl, and everything else NOERROR without records.
func answerA(ip string, ttl uint32) func(string, *dns.Msg) *dns.Msg {
	return func(_ string, r *dns.Msg) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
				A:   net.ParseIP(ip),
			})
		}
		if o := r.IsEdns0(); o != nil {
			m.SetEdns0(o.UDPSize(), o.Do())
		}
		return m
	}
}

// loopbackDial dials without SO_BINDTODEVICE; tests that want the binding use Interface "lo".
func loopbackDial(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}

// startForwarder starts a forwarder on 127.0.0.1:0 serving 127.0.0.0/8, forwarding to up, with mod
// applied to its config, and closes it at cleanup.
func startForwarder(tb testing.TB, up netip.AddrPort, mod func(*Config)) *Forwarder {
	tb.Helper()
	cfg := Config{
		Listen:    netip.MustParseAddrPort("127.0.0.1:0"),
		LAN:       []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Upstream:  up,
		Interface: "lo",
		Timeout:   time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	f, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	if err := f.Start(); err != nil {
		tb.Fatalf("Start: %v", err)
	}
	tb.Cleanup(func() { f.Close() })
	return f
}

// exchange asks the forwarder f question m over network and returns the answer.
func exchange(tb testing.TB, f *Forwarder, network string, m *dns.Msg) *dns.Msg {
	tb.Helper()
	r, err := tryExchange(f, network, m, 3*time.Second)
	if err != nil {
		tb.Fatalf("exchange %s %v: %v", network, m.Question, err)
	}
	return r
}

func tryExchange(f *Forwarder, network string, m *dns.Msg, timeout time.Duration) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: timeout, UDPSize: 65535}
	r, _, err := c.Exchange(m, f.Addr().String())
	return r, err
}

func query(name string, t uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), t)
	return m
}

// rawUpstream is a UDP upstream driven by the test: it hands each query to h with the socket and the
// client's address, so that h can send any bytes back. h gets its own copy of the query.
func rawUpstream(tb testing.TB, h func(c *net.UDPConn, from netip.AddrPort, q []byte)) netip.AddrPort {
	tb.Helper()
	return serveUDP(tb, func(c *net.UDPConn, from netip.AddrPort, q []byte) {
		h(c, from, append([]byte(nil), q...))
	})
}

// serveUDP serves a loopback UDP socket until the test ends, handing h each datagram in a buffer
// that the next read reuses.
func serveUDP(tb testing.TB, h func(c *net.UDPConn, from netip.AddrPort, q []byte)) netip.AddrPort {
	tb.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		tb.Fatalf("loopback UDP upstream: %v", err)
	}
	done := make(chan struct{})
	tb.Cleanup(func() { c.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			h(c, from, buf[:n])
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// fastAnswer turns the query q into an answer in place: one A record 192.0.2.1 with ttl, its name a
// pointer to the question (RFC 1035 4.1.4). It allocates nothing if q has room.
func fastAnswer(q []byte, ttl uint32) []byte {
	qe := nameEnd(q, headerLen) + 4
	q = q[:qe]
	q[offFlags1] |= flagQR
	q[offFlags2] = 0x80
	binary.BigEndian.PutUint16(q[offANCount:], 1)
	binary.BigEndian.PutUint16(q[offNSCount:], 0)
	binary.BigEndian.PutUint16(q[offARCount:], 0)
	q = append(q, 0xc0, headerLen, 0, 1, 0, 1) // name ptr, TYPE A, CLASS IN
	q = binary.BigEndian.AppendUint32(q, ttl)
	return append(q, 0, 4, 192, 0, 2, 1) // RDLENGTH, RDATA
}
