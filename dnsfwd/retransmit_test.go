package dnsfwd

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// TestLostQueryRetransmitted: the upstream loses the first datagram of every question (or answers it
// late); the client still gets one NOERROR well before Timeout, from a second send with a new ID from
// a new source port.
func TestLostQueryRetransmitted(t *testing.T) {
	for _, late := range []bool{false, true} {
		name := "first lost"
		if late {
			name = "first answered late"
		}
		t.Run(name, func(t *testing.T) {
			type try struct {
				from netip.AddrPort
				id   uint16
			}
			type firstTry struct {
				q    []byte
				from netip.AddrPort
			}
			first := make(chan firstTry, 1)
			var mu sync.Mutex
			tries := map[string][]try{}
			up := rawUpstream(t, func(c *net.UDPConn, from netip.AddrPort, q []byte) {
				name := string(q[headerLen:nameEnd(q, headerLen)])
				mu.Lock()
				tries[name] = append(tries[name], try{from, binary.BigEndian.Uint16(q)})
				n := len(tries[name])
				mu.Unlock()
				switch {
				case n == 1 && late:
					first <- firstTry{q, from} // answered only once the second try is
				case n > 1:
					c.WriteToUDPAddrPort(fastAnswer(q, 60), from)
					select {
					case ft := <-first: // now late: the forwarder has moved on to the second try
						c.WriteToUDPAddrPort(fastAnswer(ft.q, 60), ft.from)
					default:
					}
				}
			})
			const timeout = 2 * time.Second
			f := startForwarder(t, up, func(c *Config) { c.Timeout = timeout; c.CacheSize = -1 })
			start := time.Now()
			r, err := tryExchange(f, "udp", query("lost.example", dns.TypeA), 3*time.Second)
			el := time.Since(start)
			if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
				t.Fatalf("answer %v, error %v: want NOERROR with one record", r, err)
			}
			if el > timeout/2 {
				t.Errorf("answered after %v: want the retransmission well before Timeout %v", el, timeout)
			}
			mu.Lock()
			ts := tries["\x04lost\x07example\x00"]
			mu.Unlock()
			if len(ts) != 2 || ts[0].id == ts[1].id || ts[0].from.Port() == ts[1].from.Port() {
				t.Fatalf("upstream got %+v: want two tries, new ID and new source port", ts)
			}
			if late {
				waitFor(t, func() bool { return f.Stats().Mismatched == 1 }) // the late answer to the first try
			}
			// The answer is counted just after its write, and the late one may
			// be read first (its own socket's reader): the client may be faster.
			waitFor(t, func() bool { return f.Stats().OK == 1 })
			s := f.Stats()
			if s.Retransmits != 1 || s.OK != 1 || s.ServFail != 0 || s.InFlight != 0 || (late && s.Mismatched != 1) {
				t.Errorf("stats %+v: want one retransmission, one answer (late answer mismatched)", s)
			}
		})
	}
}

// TestRTO: the retransmission timeout follows the upstream's latency within [minRTO, Timeout/4].
func TestRTO(t *testing.T) {
	u := &upstreams{f: &Forwarder{cfg: Config{Timeout: 2 * time.Second}}}
	if got := time.Duration(u.rto()); got != minRTO {
		t.Errorf("no sample: RTO %v, want %v", got, minRTO)
	}
	for range 50 {
		u.sample(int64(100 * time.Millisecond))
	}
	if got := time.Duration(u.rto()); got < 100*time.Millisecond || got > 500*time.Millisecond || got < minRTO {
		t.Errorf("steady 100 ms: RTO %v", got)
	}
	for range 50 {
		u.sample(int64(3 * time.Second))
	}
	if got := time.Duration(u.rto()); got != 500*time.Millisecond {
		t.Errorf("3 s latency: RTO %v, want Timeout/4", got)
	}
}

// TestBurstBuffers: the listening and upstream UDP sockets get the burst buffer sizes (this test
// runs as root, so the FORCE variants apply beyond net.core.rmem_max).
func TestBurstBuffers(t *testing.T) {
	up := startUpstream(t, answerA("192.0.2.14", 60))
	f := startForwarder(t, up.addr, nil)
	get := func(c syscall.Conn, opt int) int {
		rc, err := c.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		v := 0
		rc.Control(func(fd uintptr) { v, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, opt) })
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	conns := map[string]syscall.Conn{"listening": f.udp[0], "upstream": f.ups.udp[0].Load().conn.(*net.UDPConn)}
	for name, c := range conns {
		if r, s := get(c, unix.SO_RCVBUF), get(c, unix.SO_SNDBUF); r < 2*burstRecvBuffer || s < 2*burstSendBuffer {
			t.Errorf("%s socket: SO_RCVBUF %d, SO_SNDBUF %d; want %d and %d (twice what is set)", name, r, s, 2*burstRecvBuffer, 2*burstSendBuffer)
		}
	}
}

// TestBurstWithLossNoFailure: a burst of unique names to an upstream that loses every tenth
// datagram (as the home resolver's full receive buffer does under a burst) is answered NOERROR
// throughout, each loss recovered by a retransmission. A question is lost once at most: a
// retransmission lost as well, thrice in a row, would be the 2 s timeout's SERVFAIL, which is
// right for a resolver that drops a tenth of everything, and no test of recovery.
func TestBurstWithLossNoFailure(t *testing.T) {
	var mu sync.Mutex
	n := 0
	lost := map[string]bool{}
	up := rawUpstream(t, func(c *net.UDPConn, from netip.AddrPort, q []byte) {
		var m dns.Msg
		if m.Unpack(q) != nil || len(m.Question) != 1 {
			return
		}
		name := m.Question[0].Name
		mu.Lock()
		n++
		lose := n%10 == 0 && !lost[name]
		if lose {
			lost[name] = true
		}
		mu.Unlock()
		if !lose {
			c.WriteToUDPAddrPort(fastAnswer(q, 60), from)
		}
	})
	f := startForwarder(t, up, func(c *Config) { c.Timeout = 2 * time.Second })
	const clients, each = 20, 50
	errs := make(chan error, clients*each)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				r, err := tryExchange(f, "udp", query(fmt.Sprintf("b%d-%d.example", c, i), dns.TypeA), 3*time.Second)
				switch {
				case err != nil:
					errs <- err
				case r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1:
					errs <- fmt.Errorf("%s: rcode %s, %d records", r.Question[0].Name, dns.RcodeToString[r.Rcode], len(r.Answer))
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	mu.Lock()
	losses := uint64(len(lost))
	mu.Unlock()
	waitFor(t, func() bool { return f.Stats().OK == clients*each }) // counted just after the write
	if s := f.Stats(); s.OK != clients*each || s.ServFail != 0 || losses < clients*each/20 || s.Retransmits < losses {
		t.Errorf("stats %+v: want %d NOERROR, no SERVFAIL, a retransmission per loss (%d lost)", s, clients*each, losses)
	}
}

// TestSweeperSleepsWhileIdle: with no query waiting the sweeper stops ticking,
// and a query then wakes it in time to fail on time at a silent upstream.
func TestSweeperSleepsWhileIdle(t *testing.T) {
	const timeout = 300 * time.Millisecond
	hole := rawUpstream(t, func(*net.UDPConn, netip.AddrPort, []byte) {})
	f := startForwarder(t, hole, func(c *Config) { c.Timeout = timeout })
	waitFor(t, f.ups.asleep.Load)
	start := time.Now()
	r, err := tryExchange(f, "udp", query("asleep.example", dns.TypeA), 3*time.Second)
	if el := time.Since(start); err != nil || r.Rcode != dns.RcodeServerFailure || el > timeout+timeout/2 {
		t.Fatalf("query to a silent upstream after an idle spell: %v, %v after %v; want SERVFAIL within about %v", r, err, el, timeout)
	}
	if s := f.Stats(); s.Retransmits == 0 {
		t.Errorf("stats %+v: the query was not sent again before it failed", s)
	}
	waitFor(t, f.ups.asleep.Load)
}
