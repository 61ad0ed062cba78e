package dnsfwd

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

const (
	maxTCPClients = 256              // concurrent TCP client connections; more are closed at once
	tcpIdle       = 10 * time.Second // RFC 7766 section 6.2.3 suggests tens of seconds at most
	tcpWrite      = 5 * time.Second  // a client that does not read its answers is disconnected

	// Answers waiting for a TCP client's writer: at most this many, and this many bytes unless the
	// queue is empty (one answer of any size always fits). Beyond, an upstream answer for the client
	// is dropped, and the client's own reader (cache hits, errors) waits: the worst case, 256 clients
	// that never read, holds about 256 x (32 KiB + 64 KiB) = 24 MiB.
	tcpQueueLen   = 64
	tcpQueueBytes = 32 << 10
)

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
