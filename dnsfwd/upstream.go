package dnsfwd

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Upstream queries. A query forwarded upstream is a pending: the client's message with a fresh random
// ID, registered under that ID in the table of the socket it was sent on. The socket's reader goroutine
// validates each answer against the pending query (ID, then name case-insensitively, type and class),
// drops and counts a mismatch while the wait goes on, and hands a match to finish. Whoever deletes a
// pending from its table owns it.

const (
	udpUpstreams = 4 // UDP sockets, each with its own ephemeral source port chosen by the kernel
	// A UDP socket is replaced after this many queries or this long, so that the source port keeps
	// changing (RFC 5452 section 9.2); the old one drains its pendings, then closes.
	udpRotateQueries = 4096
	udpRotateAge     = time.Minute
	tcpUpstreams     = 2 // TCP connections, opened on demand and pipelined (RFC 7766 section 6.2.1.1)
	tcpTries         = 2 // sends of one query over TCP when connections fail under it

	minRTO = 200 * time.Millisecond // the earliest a UDP query is sent again; the tunnel's RTT is rarely above 100 ms
)

type pending struct {
	query    []byte // the client's query; its ID is the upstream ID once sent
	q        question
	clientID uint16
	sent     int64 // now() at the last send
	deadline int64 // now() after which the sweeper answers SERVFAIL
	resend   int64 // now() after which the sweeper sends a UDP query again
	rto      int64 // nanoseconds from the last UDP send to resend
	tries    int   // TCP sends so far
	way      way   // which upstream, and whether the answer fills the local set

	udp  *net.UDPConn // client over UDP: listening socket and address
	addr netip.AddrPort
	tcp  *tcpClient // client over TCP

	key       string     // coalescing key, set when p leads
	followers []*pending // identical queries waiting on p; protected by the coalescer's shard lock

	small [512]byte // backing store for query when it fits
}

func newPending(msg []byte, q question) *pending {
	p := &pending{q: q, clientID: binary.BigEndian.Uint16(msg[offID:])}
	if len(msg) <= len(p.small) {
		p.query = append(p.small[:0], msg...)
	} else {
		p.query = append([]byte(nil), msg...)
	}
	return p
}

// table maps upstream IDs to pendings of one socket or connection.
type table struct {
	mu   sync.Mutex
	pend map[uint16]*pending // protected by mu
}

// add registers p under a fresh random ID, writes that ID into p.query and sets p.sent. Called with
// mu held.
func (t *table) add(p *pending) {
	id := uint16(rand.Uint32()) // math/rand/v2's runtime source is ChaCha8, seeded per thread from the OS
	for t.pend[id] != nil {
		id = uint16(rand.Uint32())
	}
	t.pend[id] = p
	binary.BigEndian.PutUint16(p.query[offID:], id)
	p.sent = now()
}

// take removes and returns the pending the answer msg (parsed into q, ok) belongs to, or nil if none
// does: unknown ID, unparseable question, or a question that is not the query's.
func (t *table) take(msg []byte, q question, ok bool) *pending {
	id := binary.BigEndian.Uint16(msg[offID:])
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pend[id]
	if p == nil || !ok || msg[offFlags1]&(flagQR|maskOpcode) != flagQR || !sameQuestion(p.query, p.q.end, msg, q.end) {
		return nil
	}
	delete(t.pend, id)
	return p
}

// empty reports whether no query waits in t.
func (t *table) empty() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pend) == 0
}

// expired removes the pendings whose deadline is before t and appends them to out, and those whose
// resend time has come (UDP only), appending them to due.
func (tb *table) expired(t int64, out, due []*pending) ([]*pending, []*pending) {
	tb.mu.Lock()
	for id, p := range tb.pend {
		switch {
		case p.deadline < t:
			delete(tb.pend, id)
			out = append(out, p)
		case p.resend != 0 && p.resend <= t:
			delete(tb.pend, id)
			due = append(due, p)
		}
	}
	tb.mu.Unlock()
	return out, due
}

type upstreams struct {
	f    *Forwarder
	addr netip.AddrPort                                                       // the resolver
	dial func(ctx context.Context, network, address string) (net.Conn, error) // its sockets' dialer
	udp  [udpUpstreams]atomic.Pointer[udpUpstream]                            // sockets in service
	tcp  [tcpUpstreams]tcpUpstream
	next atomic.Uint32
	wake chan struct{} // a query was registered: the sweeper, stopped while idle, ticks again
	// asleep is set while the sweeper's ticker is stopped (for tests).
	asleep atomic.Bool

	// The upstream's latency over UDP (RFC 6298's estimator), in nanoseconds. Readers update it
	// without a lock: a lost update only delays the estimate.
	srtt, rttvar atomic.Int64

	// retired sockets, still reading answers to their pendings; touched by the sweeper only
	retired []*udpUpstream
}

type udpUpstream struct {
	table
	conn    net.Conn
	sent    atomic.Uint32
	born    int64 // now() when dialled
	retired int64 // now() when taken out of service
}

type tcpUpstream struct {
	table            // pend is nil while conn is nil
	conn  net.Conn   // protected by mu; nil when not connected
	wbuf  []byte     // protected by mu: length-prefixed frame being written
	ups   *upstreams // owner
	dial  sync.Mutex // serialises dialing
}

// openUpstreams dials the UDP sockets to addr; TCP connections are dialled when first needed. The
// caller starts the readers (start).
func (f *Forwarder) openUpstreams(ctx context.Context, addr netip.AddrPort,
	dial func(ctx context.Context, network, address string) (net.Conn, error)) (*upstreams, error) {
	u := &upstreams{f: f, addr: addr, dial: dial, wake: make(chan struct{}, 1)}
	for i := range u.udp {
		s, err := u.dialUDP(ctx)
		if err != nil {
			for j := range i {
				u.udp[j].Load().conn.Close()
			}
			return nil, err
		}
		u.udp[i].Store(s)
	}
	for i := range u.tcp {
		u.tcp[i].ups = u
	}
	return u, nil
}

func (u *upstreams) dialUDP(ctx context.Context) (*udpUpstream, error) {
	c, err := u.dial(ctx, "udp", u.addr.String())
	if err != nil {
		return nil, fmt.Errorf("dnsfwd: open UDP socket to upstream %s: %w", u.addr, err)
	}
	if sc, ok := c.(syscall.Conn); ok {
		sizeBuffers(sc)
	}
	s := &udpUpstream{conn: c, born: now()}
	s.pend = make(map[uint16]*pending)
	return s, nil
}

// start starts the readers of the UDP sockets and the sweeper. Called with f.mu held.
func (u *upstreams) start() {
	for i := range u.udp {
		u.f.wg.Add(1)
		go u.readUDP(u.udp[i].Load())
	}
	u.f.wg.Add(1)
	go u.sweep(min(max(u.f.cfg.Timeout/8, 5*time.Millisecond), minRTO/4))
}

// close closes every socket. Called with f.mu held, after f.done is closed: the sweeper, which
// alone replaces UDP sockets, closes those it makes afterwards itself.
func (u *upstreams) close() {
	for i := range u.udp {
		u.udp[i].Load().conn.Close()
	}
	for i := range u.tcp {
		t := &u.tcp[i]
		t.mu.Lock()
		if t.conn != nil {
			t.conn.Close()
		}
		t.mu.Unlock()
	}
}
