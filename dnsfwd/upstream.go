package dnsfwd

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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
//
// A sweeper, every few tens of milliseconds, sends again a UDP query that got no answer within the
// retransmission timeout (the upstream's smoothed latency plus four deviations, in [minRTO, Timeout/4],
// doubled at each try): the same question under a new random ID on another socket, so from another
// source port. Under a burst the common loss is a datagram dropped on the way (the home resolver's
// receive buffer overflowing, in the lab), and a later try finds room. Late answers to an earlier try
// are then counted as mismatched. A pending still unanswered at Timeout gets SERVFAIL.

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
	udp  [udpUpstreams]atomic.Pointer[udpUpstream] // sockets in service
	tcp  [tcpUpstreams]tcpUpstream
	next atomic.Uint32

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

// openUpstreams dials the UDP sockets; TCP connections are dialled when first needed. The caller
// starts the readers (start).
func (f *Forwarder) openUpstreams(ctx context.Context) (*upstreams, error) {
	u := &upstreams{f: f}
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
	c, err := u.f.dial(ctx, "udp", u.f.cfg.Upstream.String())
	if err != nil {
		return nil, fmt.Errorf("dnsfwd: open UDP socket to upstream %s: %w", u.f.cfg.Upstream, err)
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

// sendUDP forwards p over one of the UDP sockets.
func (u *upstreams) sendUDP(p *pending) {
	t := now()
	p.deadline = t + int64(u.f.cfg.Timeout)
	p.rto = u.rto()
	p.resend = t + p.rto
	u.writeUDP(u.udp[u.next.Add(1)%udpUpstreams].Load(), p)
}

// writeUDP registers p in s's table and sends it on s.
func (u *upstreams) writeUDP(s *udpUpstream, p *pending) {
	s.sent.Add(1)
	s.mu.Lock()
	s.add(p)
	id := binary.BigEndian.Uint16(p.query[offID:])
	b := p.query
	s.mu.Unlock()
	// p may be answered before Write returns: from now on b is only read (fail, finish, the TC retry
	// and a retransmission copy p.query before writing).
	if _, err := s.conn.Write(b); err != nil {
		u.f.st.upErrors.Add(1)
		s.mu.Lock()
		mine := s.pend[id] == p
		if mine {
			delete(s.pend, id)
		}
		s.mu.Unlock()
		if mine {
			u.f.fail(p, rcodeServFail)
		}
	}
}

// rto returns the retransmission timeout of a first UDP send: srtt + 4 rttvar (RFC 6298 2.3) within
// [minRTO, Timeout/4], so that at least three tries fit in Timeout.
func (u *upstreams) rto() int64 {
	hi := int64(u.f.cfg.Timeout / 4)
	lo := min(int64(minRTO), hi)
	return min(max(u.srtt.Load()+4*u.rttvar.Load(), lo), hi)
}

// sample feeds one measured UDP round trip (nanoseconds) to the latency estimate (RFC 6298 2.2, 2.3).
func (u *upstreams) sample(r int64) {
	srtt := u.srtt.Load()
	if srtt == 0 {
		u.srtt.Store(r)
		u.rttvar.Store(r / 2)
		return
	}
	d := srtt - r
	if d < 0 {
		d = -d
	}
	v := u.rttvar.Load()
	u.rttvar.Store(v + (d-v)/4)
	u.srtt.Store(srtt + (r-srtt)/8)
}

// retransmit sends p, taken from socket from's table after no answer in time, again on another socket
// under a new ID, and schedules the next try at twice the timeout. Only the sweeper calls it.
func (u *upstreams) retransmit(p *pending, from *udpUpstream, t int64) {
	s := u.udp[u.next.Add(1)%udpUpstreams].Load()
	if s == from {
		s = u.udp[u.next.Add(1)%udpUpstreams].Load()
	}
	u.f.st.retransmits.Add(1)
	// A copy: a Write of the old bytes may still be running (rare path, so allocate).
	p.query = append([]byte(nil), p.query...)
	p.rto *= 2
	p.resend = t + p.rto
	u.writeUDP(s, p)
}

// readUDP reads answers from UDP socket s until it is closed.
func (u *upstreams) readUDP(s *udpUpstream) {
	defer u.f.wg.Done()
	buf := make([]byte, maxMsgSize)
	var info rrInfo
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ICMP errors (port unreachable) surface here once each; pendings wait for their timeout.
			u.f.st.upErrors.Add(1)
			continue
		}
		msg := buf[:n]
		if n < headerLen {
			u.f.st.mismatch.Add(1)
			continue
		}
		q, ok := parseMessage(msg)
		p := s.take(msg, q, ok)
		if p == nil {
			u.f.st.mismatch.Add(1)
			continue
		}
		if msg[offFlags1]&flagTC != 0 {
			u.f.st.tcRetried.Add(1)
			p.tries = 0
			p.resend = 0
			// sendTCP rewrites the ID: give it its own copy, sendUDP's Write may still be reading.
			p.query = append([]byte(nil), p.query...)
			u.f.wg.Add(1) // this reader is counted, so Close is not done waiting
			go func() {   // may dial; rare
				defer u.f.wg.Done()
				u.sendTCP(p)
			}()
			continue
		}
		u.sample(now() - p.sent)
		u.f.finish(p, msg, q, &info)
	}
}

// sendTCP forwards p over one of the pipelined TCP connections, dialling it if needed.
func (u *upstreams) sendTCP(p *pending) {
	p.tries++
	t := &u.tcp[u.next.Add(1)%tcpUpstreams]
	if err := t.connect(); err != nil {
		u.f.st.upErrors.Add(1)
		u.f.log.Debug("dnsfwd: upstream TCP connection failed", "upstream", u.f.cfg.Upstream, "err", err)
		u.f.fail(p, rcodeServFail)
		return
	}
	t.mu.Lock()
	if t.conn == nil { // lost between connect and here
		t.mu.Unlock()
		u.retryTCP(p)
		return
	}
	p.deadline = now() + int64(u.f.cfg.Timeout)
	p.resend = 0 // TCP: the connection retransmits
	t.add(p)
	t.wbuf = binary.BigEndian.AppendUint16(t.wbuf[:0], uint16(len(p.query)))
	t.wbuf = append(t.wbuf, p.query...)
	t.conn.SetWriteDeadline(time.Now().Add(u.f.cfg.Timeout))
	_, err := t.conn.Write(t.wbuf)
	var lost []*pending
	if err != nil {
		u.f.st.upErrors.Add(1)
		lost = t.drop(t.conn)
	}
	t.mu.Unlock()
	for _, p := range lost {
		u.retryTCP(p)
	}
}

func (u *upstreams) retryTCP(p *pending) {
	if p.tries < tcpTries && now() < p.deadline {
		u.sendTCP(p)
		return
	}
	u.f.fail(p, rcodeServFail)
}

// connect makes sure t has a connection.
func (t *tcpUpstream) connect() error {
	t.mu.Lock()
	ok := t.conn != nil
	t.mu.Unlock()
	if ok {
		return nil
	}
	t.dial.Lock()
	defer t.dial.Unlock()
	t.mu.Lock()
	ok = t.conn != nil
	t.mu.Unlock()
	if ok {
		return nil
	}
	f := t.ups.f
	ctx, cancel := context.WithTimeout(context.Background(), f.cfg.Timeout)
	c, err := f.dial(ctx, "tcp", f.cfg.Upstream.String())
	cancel()
	if err != nil {
		return fmt.Errorf("dnsfwd: connect TCP to upstream %s: %w", f.cfg.Upstream, err)
	}
	f.mu.Lock() // before t.mu, as in Close: a connection is either seen by Close or never made
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return ErrClosed
	}
	t.mu.Lock()
	t.conn = c
	t.pend = make(map[uint16]*pending)
	t.mu.Unlock()
	f.wg.Add(1)
	go t.read(c)
	return nil
}

// drop forgets connection c if it is still t's, closes it and returns the pendings sent on it.
// Called with mu held.
func (t *tcpUpstream) drop(c net.Conn) []*pending {
	if t.conn != c {
		return nil
	}
	c.Close()
	t.conn = nil
	lost := make([]*pending, 0, len(t.pend))
	for _, p := range t.pend {
		lost = append(lost, p)
	}
	t.pend = nil
	return lost
}

// read reads answers from connection c until it fails or is closed.
func (t *tcpUpstream) read(c net.Conn) {
	f := t.ups.f
	defer f.wg.Done()
	r := bufio.NewReader(c)
	buf := make([]byte, maxMsgSize)
	var info rrInfo
	for {
		var hdr [2]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			break
		}
		msg := buf[:binary.BigEndian.Uint16(hdr[:])]
		if _, err := io.ReadFull(r, msg); err != nil {
			break
		}
		if len(msg) < headerLen {
			f.st.mismatch.Add(1)
			continue
		}
		q, ok := parseMessage(msg)
		p := t.take(msg, q, ok) // a nil table (connection dropped) holds nothing
		if p == nil {
			f.st.mismatch.Add(1)
			continue
		}
		f.finish(p, msg, q, &info)
	}
	t.mu.Lock()
	lost := t.drop(c)
	t.mu.Unlock()
	if f.isClosed() {
		return
	}
	for _, p := range lost {
		t.ups.retryTCP(p)
	}
}

// sweep sends again the UDP pendings whose resend time has come and answers SERVFAIL to every pending
// past its deadline, every tick until Close.
func (u *upstreams) sweep(tick time.Duration) {
	defer u.f.wg.Done()
	tk := time.NewTicker(tick)
	defer tk.Stop()
	var out, due []*pending
	for {
		select {
		case <-u.f.done:
			// Close may have missed a socket made by rotate just before.
			for i := range u.udp {
				u.udp[i].Load().conn.Close()
			}
			for _, s := range u.retired {
				s.conn.Close()
			}
			return
		case <-tk.C:
		}
		t := now()
		out = out[:0]
		for i := range u.udp {
			s := u.udp[i].Load()
			out, due = s.expired(t, out, due[:0])
			for _, p := range due {
				u.retransmit(p, s, t)
			}
		}
		for _, s := range u.retired {
			out, due = s.expired(t, out, due[:0])
			for _, p := range due {
				u.retransmit(p, s, t)
			}
		}
		for i := range u.tcp {
			out, _ = u.tcp[i].expired(t, out, nil) // TCP pendings have no resend time
		}
		clear(due)
		for _, p := range out {
			u.f.st.timeouts.Add(1)
			u.f.fail(p, rcodeServFail)
		}
		clear(out)
		u.rotate(t)
	}
}

// rotate replaces UDP sockets that served long enough and closes retired ones with nothing left
// to wait for. Only the sweeper calls it.
func (u *upstreams) rotate(t int64) {
	kept := u.retired[:0]
	for _, s := range u.retired {
		s.mu.Lock()
		idle := len(s.pend) == 0
		s.mu.Unlock()
		if idle && t-s.retired > int64(u.f.cfg.Timeout) { // late answers are read, then counted as mismatched
			s.conn.Close()
			continue
		}
		kept = append(kept, s)
	}
	clear(u.retired[len(kept):])
	u.retired = kept
	for i := range u.udp {
		old := u.udp[i].Load()
		if old.sent.Load() < u.f.rotateQueries && t-old.born < int64(udpRotateAge) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), u.f.cfg.Timeout)
		s, err := u.dialUDP(ctx)
		cancel()
		if err != nil {
			u.f.st.upErrors.Add(1)
			old.born = t // keep the old socket; try again later
			continue
		}
		u.f.wg.Add(1) // the sweeper runs, so Close has not finished waiting
		go u.readUDP(s)
		u.udp[i].Store(s)
		old.retired = t
		u.retired = append(u.retired, old)
	}
}
