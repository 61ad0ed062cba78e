package dnsfwd

import (
	"context"
	"time"
)

// A sweeper, every few tens of milliseconds, sends again a UDP query that got no answer within the
// retransmission timeout (the upstream's smoothed latency plus four deviations, in [minRTO, Timeout/4],
// doubled at each try): the same question under a new random ID on another socket, so from another
// source port. Under a burst the common loss is a datagram dropped on the way (the home resolver's
// receive buffer overflowing, in the lab), and a later try finds room. Late answers to an earlier try
// are then counted as mismatched. A pending still unanswered at Timeout gets SERVFAIL.

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

// sweep sends again the UDP pendings whose resend time has come and answers SERVFAIL to every pending
// past its deadline, every tick while any query waits, until Close.
func (u *upstreams) sweep(tick time.Duration) {
	defer u.f.wg.Done()
	tk := time.NewTicker(tick)
	defer tk.Stop()
	// While the sweeper ticks it does not listen for kicks (a kick then
	// would wake it for nothing, once per query under load); while it
	// sleeps, for kicks and Close only. A kick left over from its ticking
	// wakes it once more, to find nothing and sleep again.
	ticks, kicks := tk.C, (chan struct{})(nil)
	var out, due []*pending
	for {
		select {
		case <-kicks:
			tk.Reset(tick)
			ticks, kicks = tk.C, nil
			u.asleep.Store(false)
			continue
		case <-ticks:
		case <-u.f.done:
			// Close may have missed a socket made by rotate just before.
			for i := range u.udp {
				u.udp[i].Load().conn.Close()
			}
			for _, s := range u.retired {
				s.conn.Close()
			}
			return
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
		if u.idle() {
			// Nothing to retransmit, fail or close: no ticks until a query
			// comes (kick), so that an idle gateway does not wake 20 times a
			// second for nothing. Rotation by age waits for that query too: a
			// socket sending nothing is exposed to nothing.
			tk.Stop()
			ticks, kicks = nil, u.wake
			u.asleep.Store(true)
		}
	}
}

// kick tells the sweeper a query was registered.
func (u *upstreams) kick() {
	select {
	case u.wake <- struct{}{}:
	default: // already told
	}
}

// idle reports whether no query waits on any socket or connection and no retired socket is left
// to close. Only the sweeper calls it; a query registered after it looked kicks it.
func (u *upstreams) idle() bool {
	if len(u.retired) > 0 {
		return false
	}
	for i := range u.udp {
		if !u.udp[i].Load().empty() {
			return false
		}
	}
	for i := range u.tcp {
		if !u.tcp[i].empty() {
			return false
		}
	}
	return true
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
