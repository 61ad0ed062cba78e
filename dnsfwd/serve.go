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
	maxUDPQuery   = 4096             // larger UDP queries are truncated by the read and dropped as malformed
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
	buf := make([]byte, maxUDPQuery)
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
		out = f.handle(buf[:n], out, client{udp: c, addr: addr})
	}
}

// client is where an answer goes: a UDP address on a listening socket, or a TCP connection.
type client struct {
	udp  *net.UDPConn
	addr netip.AddrPort
	tcp  *tcpClient
}

// handle answers the query msg of cl from the cache, with an error, or forwards it upstream. out is a
// scratch buffer, returned for reuse. msg is the caller's and may be modified.
func (f *Forwarder) handle(msg []byte, out []byte, cl client) []byte {
	if len(msg) < headerLen || msg[offFlags1]&flagQR != 0 {
		f.st.dropped.Add(1) // an answer, or not DNS: answering could loop
		return out
	}
	if msg[offFlags1]&maskOpcode != 0 {
		f.reply(cl, shortReply(msg, headerLen, rcodeNotImp), minUDPSize)
		return out
	}
	q, ok := parseMessage(msg)
	if !ok {
		f.reply(cl, shortReply(msg, headerLen, rcodeFormErr), minUDPSize)
		return out
	}
	var kb [maxKeyLen]byte
	key := cacheKey(&kb, msg, &q)
	if f.cache != nil {
		t := now()
		if e := f.cache.get(key, t); e != nil {
			f.st.hits.Add(1)
			out = e.render(out, msg, q.end, t)
			f.reply(cl, out, q.udpMax)
			return out
		}
	}
	f.st.misses.Add(1)
	if f.st.inflight.Add(1) > int64(f.cfg.MaxInFlight) {
		f.st.inflight.Add(-1)
		f.st.overload.Add(1)
		f.reply(cl, shortReply(msg, q.end, rcodeServFail), minUDPSize)
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
// its followers, and caches it. info is the caller's scratch.
func (f *Forwarder) finish(p *pending, msg []byte, q question, info *rrInfo) {
	f.metric.latency.Observe(float64(now()-p.sent) / 1e9)
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
	f.reply(client{udp: p.udp, addr: p.addr, tcp: p.tcp}, msg, p.q.udpMax)
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
	r := append([]byte(nil), p.query[:p.q.end]...)
	binary.BigEndian.PutUint16(r[offID:], p.clientID)
	f.reply(client{udp: p.udp, addr: p.addr, tcp: p.tcp}, shortReply(r, p.q.end, rcode), minUDPSize)
}

// shortReply turns the query msg in place into an answer with rcode, no records, and the question
// msg[headerLen:qend] (none if qend is headerLen).
func shortReply(msg []byte, qend int, rcode byte) []byte {
	msg = msg[:qend]
	msg[offFlags1] = (msg[offFlags1] | flagQR) &^ (flagTC | 0x04) // QR, opcode and RD kept, AA and TC cleared
	msg[offFlags2] = 0x80 | msg[offFlags2]&flagCD | rcode         // RA
	qd := uint16(0)
	if qend > headerLen {
		qd = 1
	}
	binary.BigEndian.PutUint16(msg[offQDCount:], qd)
	clear(msg[offANCount : offARCount+2])
	return msg
}

// reply sends the answer msg to cl and counts it. Over UDP an answer larger than udpMax, the client's
// limit, is cut to its header and question with TC set (RFC 1035 4.2.1, RFC 6891 7) so that the
// client asks again over TCP.
func (f *Forwarder) reply(cl client, msg []byte, udpMax int) {
	if cl.tcp != nil {
		if err := cl.tcp.write(msg); err != nil {
			f.st.dropped.Add(1)
			return
		}
		f.st.answered(msg[offFlags2] & maskRcode)
		return
	}
	truncated := false
	if len(msg) > udpMax {
		// A copy: msg may be delivered to other clients after this one.
		q, ok := parseMessage(msg)
		if !ok {
			f.st.dropped.Add(1)
			return
		}
		msg = append([]byte(nil), msg[:q.end]...)
		msg[offFlags1] |= flagTC
		clear(msg[offANCount : offARCount+2])
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

// tcpClient is a client's TCP connection; answers may be written from several goroutines.
type tcpClient struct {
	conn net.Conn
	mu   sync.Mutex
	wbuf []byte // protected by mu
}

func (c *tcpClient) write(msg []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wbuf = binary.BigEndian.AppendUint16(c.wbuf[:0], uint16(len(msg)))
	c.wbuf = append(c.wbuf, msg...)
	c.conn.SetWriteDeadline(time.Now().Add(tcpWrite))
	_, err := c.conn.Write(c.wbuf)
	if err != nil {
		c.conn.Close()
	}
	return err
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
	defer func() {
		f.tcpMu.Lock()
		delete(f.tcpConns, c)
		f.tcpMu.Unlock()
		c.Close()
	}()
	cl := client{tcp: &tcpClient{conn: c}}
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
