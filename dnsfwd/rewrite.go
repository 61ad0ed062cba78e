package dnsfwd

import "encoding/binary"

// stripOptions removes the COOKIE (RFC 7873) and client subnet (RFC 7871) options from the OPT record
// of msg, whose TYPE field is at opt, and returns msg shortened by their bytes; nothing is allocated.
// Both would otherwise travel with a shared answer: a client's cookie or subnet in a cached or
// coalesced answer to another, and the LAN's subnets to the home resolver. Options are walked by their
// lengths; a malformed one stops the walk and it and the rest are kept as they are.
func stripOptions(msg []byte, opt int) []byte {
	if opt+10 > len(msg) {
		return msg
	}
	start := opt + 10
	end := start + int(binary.BigEndian.Uint16(msg[opt+8:]))
	if end > len(msg) {
		return msg
	}
	r, w := start, start
	for r+4 <= end {
		code := binary.BigEndian.Uint16(msg[r:])
		n := 4 + int(binary.BigEndian.Uint16(msg[r+2:]))
		if r+n > end {
			break
		}
		if code != optionCookie && code != optionECS {
			w += copy(msg[w:], msg[r:r+n])
		}
		r += n
	}
	if r == w {
		return msg
	}
	w += copy(msg[w:], msg[r:end])
	cut := end - w
	binary.BigEndian.PutUint16(msg[opt+8:], uint16(w-start))
	copy(msg[w:], msg[end:])
	return msg[:len(msg)-cut]
}

// appendOPT appends a minimal OPT record (RFC 6891 section 6.1.2: no options, version 0, the DO bit
// of the query, RFC 3225) to msg if q, the query, had one, and counts it in ARCOUNT.
func appendOPT(msg []byte, q question) []byte {
	if !q.edns {
		return msg
	}
	var do byte
	if q.do {
		do = ednsDOFlag
	}
	msg = append(msg, 0, 0, typeOPT, ednsUDPSize>>8, ednsUDPSize&0xff, 0, 0, do, 0, 0, 0)
	binary.BigEndian.PutUint16(msg[offARCount:], binary.BigEndian.Uint16(msg[offARCount:])+1)
	return msg
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
