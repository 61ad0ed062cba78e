package dnsfwd

import (
	"encoding/binary"
	"net"
	"net/netip"
)

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
	w := f.brk.choose(cl.addr.Addr(), msg, q.end)
	var kb [maxKeyLen]byte
	key := w.key(cacheKey(&kb, msg, &q))
	if f.cache != nil {
		t := now()
		if e := f.cache.get(key, t); e != nil {
			f.st.hits.Add(1)
			out = e.render(out, msg, q.end, t)
			if !f.passLocal(w, out, q.end) {
				f.reply(cl, shortReply(msg, q, rcodeServFail), q)
				return out
			}
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
	p.udp, p.addr, p.tcp, p.way = cl.udp, cl.addr, cl.tcp, w
	if f.coal.join(key, p) {
		f.st.coalesced.Add(1)
		return out
	}
	ups := f.ups
	if w.local() {
		ups = f.local
	}
	if cl.tcp != nil {
		ups.sendTCP(p)
	} else {
		ups.sendUDP(p)
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
	if p.way.fills() && !f.fillLocal(msg, q.end) {
		f.fail(p, rcodeServFail) // no client may use an address whose route is not there
		return
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
	if p.way.local() {
		f.st.local.Add(1)
	}
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
