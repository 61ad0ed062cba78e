package dnsfwd

import (
	"encoding/binary"
	"errors"
	"net"
)

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
	u.kick()
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
