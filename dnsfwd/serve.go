package dnsfwd

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"
)

const (
	maxTCPClients = 256              // concurrent TCP client connections; more are closed at once
	tcpIdle       = 10 * time.Second // RFC 7766 section 6.2.3 suggests tens of seconds at most
	tcpWrite      = 5 * time.Second  // a client that does not read its answers is disconnected
	maxUDPQuery   = 4096             // larger UDP queries are dropped (read into one byte more to see them)

	// Answers waiting for a TCP client's writer: at most this many, and this many bytes unless the
	// queue is empty (one answer of any size always fits). Beyond, an upstream answer for the client
	// is dropped, and the client's own reader (cache hits, errors) waits: the worst case, 256 clients
	// that never read, holds about 256 x (32 KiB + 64 KiB) = 24 MiB.
	tcpQueueLen   = 64
	tcpQueueBytes = 32 << 10
)

// Start binds the UDP and TCP listeners on Listen, opens the upstream sockets, and returns once
// serving. Errors name the cause and the remedy (address missing, port privilege, address in use,
// tunnel interface missing).
func (f *Forwarder) Start() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.closed:
		return ErrClosed
	case f.started:
		return errors.New("dnsfwd: Start called twice")
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.cfg.Timeout)
	defer cancel()

	lc := net.ListenConfig{Control: listenControl}
	addr := f.cfg.Listen
	// Several sockets on one address (SO_REUSEPORT), each with its reader: the kernel spreads clients
	// over them by their addresses, so a few busy clients still keep every core serving.
	n := max(4, 2*runtime.GOMAXPROCS(0))
	var udp []*net.UDPConn
	closeAll := func() {
		for _, c := range udp {
			c.Close()
		}
	}
	for range n {
		pc, err := lc.ListenPacket(ctx, "udp", addr.String())
		if err != nil {
			closeAll()
			return listenError("UDP", addr, err)
		}
		c := pc.(*net.UDPConn)
		sizeBuffers(c)
		udp = append(udp, c)
		addr = netip.AddrPortFrom(addr.Addr(), c.LocalAddr().(*net.UDPAddr).AddrPort().Port())
	}
	tl, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr.String())
	if err != nil {
		closeAll()
		return listenError("TCP", addr, err)
	}
	ups, err := f.openUpstreams(ctx)
	if err != nil {
		closeAll()
		tl.Close()
		return err
	}
	f.udp, f.tcp, f.addr, f.ups, f.started = udp, tl, addr, ups, true

	for _, c := range udp {
		f.wg.Add(1)
		go f.serveUDP(c)
	}
	ups.start()
	f.wg.Add(1)
	go f.serveTCP(tl)
	f.log.Info("dnsfwd: serving", "listen", addr, "upstream", f.cfg.Upstream, "interface", f.cfg.Interface)
	return nil
}

// Close stops serving, closes every socket and waits for the forwarder's goroutines. Pending queries
// are not answered. Close is idempotent.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	close(f.done)
	if f.started {
		for _, c := range f.udp {
			c.Close()
		}
		f.tcp.Close()
		f.ups.close()
	}
	f.mu.Unlock()
	f.tcpMu.Lock()
	for c := range f.tcpConns {
		c.Close()
	}
	f.tcpMu.Unlock()
	f.wg.Wait()
	return nil
}

func (f *Forwarder) isClosed() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

func (f *Forwarder) inLAN(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range f.cfg.LAN {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// serveUDP answers queries arriving on c until it is closed.
func (f *Forwarder) serveUDP(c *net.UDPConn) {
	defer f.wg.Done()
	buf := make([]byte, maxUDPQuery+1)
	out := make([]byte, 0, maxMsgSize)
	for {
		n, addr, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		f.st.queries.Add(1)
		if !f.inLAN(addr.Addr()) {
			// No answer at all: never an open resolver, never a reflector toward a spoofed source.
			f.st.nonLAN.Add(1)
			f.st.dropped.Add(1)
			continue
		}
		if n > maxUDPQuery { // cut by the read: forwarding the rest would forward garbage
			f.st.dropped.Add(1)
			continue
		}
		out = f.handle(buf[:n], out, client{udp: c, addr: addr})
	}
}

// client is where an answer goes: a UDP address on a listening socket, or a TCP connection.
type client struct {
	udp  *net.UDPConn
	addr netip.AddrPort
	tcp  *tcpClient
	own  bool // the caller is tcp's own reader: it waits for room in the queue rather than drop
}

// handle answers the query msg of cl from the cache, with an error, or forwards it upstream. out is a
// scratch buffer, returned for reuse. msg is the caller's and may be modified.
func (f *Forwarder) handle(msg []byte, out []byte, cl client) []byte {
	if len(msg) < headerLen || msg[offFlags1]&flagQR != 0 {
		f.st.dropped.Add(1) // an answer, or not DNS: answering could loop
		return out
	}
	if msg[offFlags1]&maskOpcode != 0 {
		// No question echoed (other opcodes lay out their sections differently), but the OPT is.
		q, ok := parseMessage(msg)
		f.reply(cl, shortReply(msg, question{end: headerLen, edns: ok && q.edns, do: ok && q.do}, rcodeNotImp), noEDNS)
		return out
	}
	q, shape := parseQuery(msg)
	if shape != queryOK {
		// Never forwarded nor cached (RFC 6891 6.1.1: FORMERR for more than one OPT). The question is echoed when it parsed, never an OPT: the query's may be
		// what is wrong.
		f.st.malformed.Add(1)
		echo := question{end: headerLen}
		if shape == malformedEchoing {
			echo.end = q.end
		}
		f.reply(cl, shortReply(msg, echo, rcodeFormErr), noEDNS)
		return out
	}
	if q.edns {
		msg = stripOptions(msg, q.opt)
	}
	var kb [maxKeyLen]byte
	key := cacheKey(&kb, msg, &q)
	if f.cache != nil {
		t := now()
		if e := f.cache.get(key, t); e != nil {
			f.st.hits.Add(1)
			out = e.render(out, msg, q.end, t)
			f.reply(cl, out, q)
			return out
		}
	}
	f.st.misses.Add(1)
	if f.st.inflight.Add(1) > int64(f.cfg.MaxInFlight) {
		// Truly full: REFUSED at once, so that the client asks elsewhere or again now, rather than a
		// SERVFAIL after a wait that the resolver's answer could not have filled anyway.
		f.st.inflight.Add(-1)
		f.st.full.Add(1)
		f.reply(cl, shortReply(msg, q, rcodeRefused), q)
		return out
	}
	p := newPending(msg, q)
	p.udp, p.addr, p.tcp = cl.udp, cl.addr, cl.tcp
	if f.coal.join(key, p) {
		f.st.coalesced.Add(1)
		return out
	}
	if cl.tcp != nil {
		f.ups.sendTCP(p)
	} else {
		f.ups.sendUDP(p)
	}
	return out
}

// finish delivers the upstream answer msg (validated, parsed into q) to p's client and to those of
// its followers, and caches it. info is the caller's scratch; msg is too, and may be modified.
func (f *Forwarder) finish(p *pending, msg []byte, q question, info *rrInfo) {
	f.metric.latency.Observe(float64(now()-p.sent) / 1e9)
	if q.edns {
		msg = stripOptions(msg, q.opt) // the upstream's cookie and subnet are no client's business
	}
	if rc := msg[offFlags2] & maskRcode; f.cache != nil && (rc == rcodeSuccess || rc == rcodeNXDomain) &&
		msg[offFlags1]&flagTC == 0 && scanAnswer(msg, q.end, info) && info.keep > 0 {
		f.cache.put(p.key, msg, info, now()) // p leads: its key is set
	}
	for _, w := range f.coal.leave(p) {
		f.deliver(w, msg, q)
	}
	f.deliver(p, msg, q)
}

// deliver sends the answer msg to p's client, rewriting ID and question spelling to p's.
func (f *Forwarder) deliver(p *pending, msg []byte, q question) {
	f.st.inflight.Add(-1)
	binary.BigEndian.PutUint16(msg[offID:], p.clientID)
	copy(msg[headerLen:q.end], p.query[headerLen:q.end])
	f.reply(client{udp: p.udp, addr: p.addr, tcp: p.tcp}, msg, p.q)
}

// fail answers p's client and its followers' with rcode.
func (f *Forwarder) fail(p *pending, rcode byte) {
	for _, w := range f.coal.leave(p) {
		f.failOne(w, rcode)
	}
	f.failOne(p, rcode)
}

func (f *Forwarder) failOne(p *pending, rcode byte) {
	f.st.inflight.Add(-1)
	// A copy: a Write of p.query to the upstream may still be running (rare path, so allocate).
	r := append(make([]byte, 0, p.q.end+optLen), p.query[:p.q.end]...)
	binary.BigEndian.PutUint16(r[offID:], p.clientID)
	f.reply(client{udp: p.udp, addr: p.addr, tcp: p.tcp}, shortReply(r, p.q, rcode), p.q)
}

// noEDNS is the question of a query not parsed: 512-byte UDP answers, no OPT.
var noEDNS = question{end: headerLen, udpMax: minUDPSize}

// shortReply turns the query msg in place into an answer with rcode, no records but a minimal OPT if
// the query had one (RFC 6891 section 6.1.1), and the question msg[headerLen:q.end] (none if q.end
// is headerLen). The OPT overwrites msg after q.end, where the query's own OPT was, so in place it
// never outgrows msg.
func shortReply(msg []byte, q question, rcode byte) []byte {
	msg = msg[:q.end]
	msg[offFlags1] = (msg[offFlags1] | flagQR) &^ (flagTC | 0x04) // QR, opcode and RD kept, AA and TC cleared
	msg[offFlags2] = 0x80 | msg[offFlags2]&flagCD | rcode         // RA
	qd := uint16(0)
	if q.end > headerLen {
		qd = 1
	}
	binary.BigEndian.PutUint16(msg[offQDCount:], qd)
	clear(msg[offANCount : offARCount+2])
	return appendOPT(msg, q)
}

// reply sends the answer msg to cl and counts it. q is cl's query, parsed. Over UDP an answer
// larger than q.udpMax, the client's limit, is cut to its header and question with TC set (RFC 1035
// 4.2.1, RFC 6891 section 7), and a minimal OPT if the query had one, so that the client asks again
// over TCP.
func (f *Forwarder) reply(cl client, msg []byte, q question) {
	if cl.tcp != nil {
		if !cl.tcp.put(msg, cl.own) {
			f.st.dropped.Add(1)
		}
		return // counted by the writer once written
	}
	truncated := false
	if len(msg) > q.udpMax {
		// A copy: msg may be delivered to other clients after this one.
		aq, ok := parseMessage(msg)
		if !ok {
			f.st.dropped.Add(1)
			return
		}
		msg = append(make([]byte, 0, aq.end+optLen), msg[:aq.end]...)
		msg[offFlags1] |= flagTC
		clear(msg[offANCount : offARCount+2])
		msg = appendOPT(msg, q)
		truncated = true
	}
	if _, err := cl.udp.WriteToUDPAddrPort(msg, cl.addr); err != nil {
		f.st.dropped.Add(1)
		return
	}
	if truncated {
		f.st.truncated.Add(1)
		return
	}
	f.st.answered(msg[offFlags2] & maskRcode)
}

// tcpClient is a client's TCP connection. Answers for it come from several goroutines (its reader,
// the upstream readers, the sweeper) and are queued for its own writer goroutine, so that a client
// that does not read stalls only itself: nobody else ever waits on its socket.
type tcpClient struct {
	conn net.Conn
	st   *counters
	done chan struct{} // closed when the writer has returned

	mu     sync.Mutex
	cond   sync.Cond // on mu: the queue got an answer, got room, or stopped
	queue  [][]byte  // protected by mu: framed answers waiting for the writer
	bytes  int       // protected by mu: bytes of queue and of the batch being written
	closed bool      // protected by mu: the writer stopped; nothing more is queued
}

// newTCPClient starts the writer of conn. The caller calls stop when it is done with conn.
func newTCPClient(conn net.Conn, st *counters) *tcpClient {
	c := &tcpClient{conn: conn, st: st, done: make(chan struct{})}
	c.cond.L = &c.mu
	go c.write()
	return c
}

// put queues a copy of the answer msg and reports whether it was. A full queue drops it, unless wait
// is set: then put waits for room or for the writer to stop.
func (c *tcpClient) put(msg []byte, wait bool) bool {
	b := make([]byte, 2+len(msg))
	binary.BigEndian.PutUint16(b, uint16(len(msg)))
	copy(b[2:], msg)
	c.mu.Lock()
	defer c.mu.Unlock()
	full := func() bool {
		return len(c.queue) >= tcpQueueLen || (c.bytes > 0 && c.bytes+len(b) > tcpQueueBytes)
	}
	for wait && !c.closed && full() {
		c.cond.Wait()
	}
	if c.closed || full() {
		return false
	}
	c.queue = append(c.queue, b)
	c.bytes += len(b)
	c.cond.Broadcast()
	return true
}

// write writes the queued answers, as many as are waiting in one go, until stop or a write fails
// (tcpWrite passed: the client does not read), which closes the connection.
func (c *tcpClient) write() {
	defer close(c.done)
	var spare [][]byte
	var rcodes []byte
	c.mu.Lock()
	for {
		for len(c.queue) == 0 && !c.closed {
			c.cond.Wait()
		}
		if c.closed {
			break
		}
		batch := c.queue
		c.queue = spare[:0]
		c.mu.Unlock()

		n := 0
		rcodes = rcodes[:0]
		for _, b := range batch {
			n += len(b)
			rcodes = append(rcodes, b[2+offFlags2]&maskRcode)
		}
		c.conn.SetWriteDeadline(time.Now().Add(tcpWrite))
		bufs := net.Buffers(batch)
		_, err := bufs.WriteTo(c.conn) // consumes bufs: batch's answers are nil after it
		if err != nil {
			c.st.dropped.Add(uint64(len(batch)))
		} else {
			for _, rc := range rcodes {
				c.st.answered(rc)
			}
		}
		clear(batch)
		spare = batch[:0]

		c.mu.Lock()
		c.bytes -= n
		c.cond.Broadcast()
		if err != nil {
			c.closed = true
			c.conn.Close()
		}
	}
	c.st.dropped.Add(uint64(len(c.queue)))
	c.queue = nil
	c.mu.Unlock()
	c.cond.Broadcast()
}

// stop stops the writer, dropping what is still queued, and waits for it. The caller closes conn
// first, so that a blocked write returns.
func (c *tcpClient) stop() {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	<-c.done
}

// serveTCP accepts TCP clients until l is closed.
func (f *Forwarder) serveTCP(l net.Listener) {
	defer f.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			f.log.Warn("dnsfwd: TCP accept failed", "err", err)
			time.Sleep(50 * time.Millisecond) // e.g. out of file descriptors: do not spin
			continue
		}
		ap := c.RemoteAddr().(*net.TCPAddr).AddrPort()
		if !f.inLAN(ap.Addr()) {
			f.st.queries.Add(1)
			f.st.nonLAN.Add(1)
			f.st.dropped.Add(1)
			c.Close()
			continue
		}
		f.tcpMu.Lock()
		if f.tcpConns == nil {
			f.tcpConns = make(map[net.Conn]struct{})
		}
		full := len(f.tcpConns) >= maxTCPClients || f.isClosed()
		if !full {
			f.tcpConns[c] = struct{}{}
			f.wg.Add(1)
		}
		f.tcpMu.Unlock()
		if full {
			c.Close()
			continue
		}
		go f.serveTCPConn(c)
	}
}

// serveTCPConn answers the pipelined queries of one TCP client (RFC 7766) until it goes idle or away.
func (f *Forwarder) serveTCPConn(c net.Conn) {
	defer f.wg.Done()
	cl := client{tcp: newTCPClient(c, &f.st), own: true}
	defer func() {
		f.tcpMu.Lock()
		delete(f.tcpConns, c)
		f.tcpMu.Unlock()
		c.Close()
		cl.tcp.stop()
	}()
	r := bufio.NewReader(c)
	var buf, out []byte
	for {
		c.SetReadDeadline(time.Now().Add(tcpIdle))
		var hdr [2]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		msg := buf[:n]
		if _, err := io.ReadFull(r, msg); err != nil {
			return
		}
		f.st.queries.Add(1)
		out = f.handle(msg, out, cl)
	}
}

// String describes the forwarder for logs.
func (f *Forwarder) String() string {
	return fmt.Sprintf("dnsfwd %s -> %s via %q", f.cfg.Listen, f.cfg.Upstream, f.cfg.Interface)
}
