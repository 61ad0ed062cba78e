package dnsfwd

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// sendTCP forwards p over one of the pipelined TCP connections, dialling it if needed.
func (u *upstreams) sendTCP(p *pending) {
	p.tries++
	t := &u.tcp[u.next.Add(1)%tcpUpstreams]
	if err := t.connect(); err != nil {
		u.f.st.upErrors.Add(1)
		u.f.log.Debug("dnsfwd: upstream TCP connection failed", "upstream", u.addr, "err", err)
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
	u.kick()
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
	c, err := t.ups.dial(ctx, "tcp", t.ups.addr.String())
	cancel()
	if err != nil {
		return fmt.Errorf("dnsfwd: connect TCP to upstream %s: %w", t.ups.addr, err)
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
