package dnsfwd

import "encoding/binary"

// DNS message layout, RFC 1035 section 4.1. Messages are handled as bytes: parsed once into offsets,
// patched in place (ID, question case, TTLs) and never re-packed on the hot path.
const (
	headerLen = 12

	offID      = 0
	offFlags1  = 2 // QR(1) OPCODE(4) AA TC RD
	offFlags2  = 3 // RA Z AD CD RCODE(4)
	offQDCount = 4
	offANCount = 6
	offNSCount = 8
	offARCount = 10

	flagQR     = 0x80 // in byte offFlags1
	flagTC     = 0x02 // in byte offFlags1
	maskOpcode = 0x78 // in byte offFlags1
	flagCD     = 0x10 // in byte offFlags2 (RFC 4035)
	maskRcode  = 0x0f // in byte offFlags2

	rcodeSuccess  = 0
	rcodeFormErr  = 1
	rcodeServFail = 2
	rcodeNXDomain = 3
	rcodeNotImp   = 4
	rcodeRefused  = 5

	typeSOA = 6
	typeOPT = 41  // RFC 6891
	typeANY = 255 // RFC 1035 3.2.3 (QTYPE "*")

	optionLLQ         = 1  // EDNS option long-lived queries (RFC 8764)
	optionUL          = 2  // EDNS option update lease (RFC 9664)
	optionECS         = 8  // EDNS option client subnet (RFC 7871)
	optionExpire      = 9  // EDNS option EXPIRE (RFC 7314)
	optionCookie      = 10 // EDNS option COOKIE (RFC 7873)
	optionKeepalive   = 11 // EDNS option edns-tcp-keepalive (RFC 7828)
	optionEDE         = 15 // EDNS option extended DNS error (RFC 8914)
	optionReporting   = 18 // EDNS option report channel (RFC 9567)
	optionZoneVersion = 19 // EDNS option ZONEVERSION (RFC 9660)

	maxNameLen  = 255 // RFC 1035 section 2.3.4, wire form
	minUDPSize  = 512
	maxMsgSize  = 65535
	ednsDOFlag  = 0x80 // in the first byte of the OPT TTL's flag half (RFC 3225)
	ednsFlagOff = 2    // offset of the flags within the OPT TTL field
	ednsUDPSize = 1232 // advertised in the forwarder's own OPT records (DNS Flag Day 2020)
	optLen      = 11   // a minimal OPT record: root name, TYPE, CLASS, TTL, RDLENGTH 0
)

// question is a parsed message: the question's extent, and what the query or answer says about EDNS.
type question struct {
	end    int    // offset just past QTYPE and QCLASS: msg[headerLen:end] is the question
	qtype  uint16 // QTYPE
	opt    int    // offset of the OPT record's TYPE field (just past its root name), if edns
	edns   bool   // an OPT record is present (RFC 6891)
	do     bool   // its DO bit is set (RFC 3225)
	udpMax int    // largest UDP answer the sender accepts: 512 without EDNS (RFC 1035 4.2.1), else the OPT size
}

// nameEnd returns the offset just past the uncompressed name at off, or -1. Questions never carry
// compression pointers (nothing precedes them to point to), so a pointer here is malformed.
func nameEnd(msg []byte, off int) int {
	start := off
	for off < len(msg) {
		l := int(msg[off])
		switch {
		case l == 0:
			if off+1-start > maxNameLen {
				return -1
			}
			return off + 1
		case l&0xc0 != 0:
			return -1
		}
		off += 1 + l
	}
	return -1
}

// skipName returns the offset just past a possibly compressed name at off (RFC 1035 4.1.4), or -1.
// Pointers are not followed: only the name's own bytes are skipped.
func skipName(msg []byte, off int) int {
	for off < len(msg) {
		l := int(msg[off])
		switch l & 0xc0 {
		case 0x00:
			if l == 0 {
				return off + 1
			}
			off += 1 + l
		case 0xc0:
			if off+2 > len(msg) {
				return -1
			}
			return off + 2
		default: // 0x40 and 0x80: extended label types (RFC 6891 deprecates them)
			return -1
		}
	}
	return -1
}

// parseMessage validates the header and the single question of msg and walks the remaining records
// far enough to find an OPT record. It reports false for anything but one question with an
// uncompressed name; records after the question that do not parse are ignored (EDNS is then absent).
func parseMessage(msg []byte) (q question, ok bool) {
	if len(msg) < headerLen || binary.BigEndian.Uint16(msg[offQDCount:]) != 1 {
		return q, false
	}
	end := nameEnd(msg, headerLen)
	if end < 0 || end+4 > len(msg) {
		return q, false
	}
	q.qtype = binary.BigEndian.Uint16(msg[end:])
	q.end = end + 4
	q.udpMax = minUDPSize
	nrr := int(binary.BigEndian.Uint16(msg[offANCount:])) + int(binary.BigEndian.Uint16(msg[offNSCount:]))
	nar := int(binary.BigEndian.Uint16(msg[offARCount:]))
	off := q.end
	for i := 0; i < nrr+nar; i++ {
		off = skipName(msg, off)
		if off < 0 || off+10 > len(msg) {
			return q, true
		}
		rtype := binary.BigEndian.Uint16(msg[off:])
		if i >= nrr && rtype == typeOPT {
			q.edns = true
			q.opt = off
			q.udpMax = max(int(binary.BigEndian.Uint16(msg[off+2:])), minUDPSize)
			q.do = msg[off+4+ednsFlagOff]&ednsDOFlag != 0
			return q, true
		}
		off += 10 + int(binary.BigEndian.Uint16(msg[off+8:]))
	}
	return q, true
}

// sameQuestion reports whether the questions a[headerLen:qa] and b[headerLen:qb] are equal, the name
// compared case-insensitively (RFC 4343), type and class exactly.
func sameQuestion(a []byte, qa int, b []byte, qb int) bool {
	if qa != qb || qa > len(a) || qb > len(b) {
		return false
	}
	for i := headerLen; i < qa; i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// ttlRef is a record's TTL field: its offset in the message and its value.
type ttlRef struct {
	off uint16
	ttl uint32
}

// rrInfo describes the records of an answer for the cache: where each TTL sits and how long the whole
// answer may be kept.
type rrInfo struct {
	ttls []ttlRef // the TTL fields of all records but OPT
	keep uint32   // seconds the answer may be cached; 0: not cacheable
}

// scanAnswer walks every record of a validated answer (question already parsed, ending at qend) and
// computes how long it may be cached: the smallest TTL of the answer section, and for a negative answer
// (NXDOMAIN, or NODATA: NOERROR without a record of the question's type, perhaps after a CNAME chain)
// also min(SOA TTL, SOA MINIMUM) per RFC 2308 section 5, and not at all without an SOA. It reports
// false if the records do not parse.
func scanAnswer(msg []byte, qend int, info *rrInfo) bool {
	an := int(binary.BigEndian.Uint16(msg[offANCount:]))
	ns := int(binary.BigEndian.Uint16(msg[offNSCount:]))
	ar := int(binary.BigEndian.Uint16(msg[offARCount:]))
	rcode := msg[offFlags2] & maskRcode
	qtype := binary.BigEndian.Uint16(msg[qend-4:])
	info.ttls = info.ttls[:0]
	keep := ^uint32(0) // over the answer section
	answered := false  // a record of qtype is in the answer section
	soa, soaRef := ^uint32(0), -1
	off := qend
	for i := 0; i < an+ns+ar; i++ {
		off = skipName(msg, off)
		if off < 0 || off+10 > len(msg) {
			return false
		}
		rtype := binary.BigEndian.Uint16(msg[off:])
		ttl := binary.BigEndian.Uint32(msg[off+4:])
		if ttl > 1<<31-1 { // RFC 2181 section 8: treat as zero
			ttl = 0
		}
		rdlen := int(binary.BigEndian.Uint16(msg[off+8:]))
		rdata := off + 10
		if rdata+rdlen > len(msg) || rdata > 1<<16-1 {
			return false
		}
		if rtype != typeOPT {
			info.ttls = append(info.ttls, ttlRef{uint16(off + 4), ttl})
		}
		switch {
		case i < an:
			keep = min(keep, ttl)
			answered = answered || rtype == qtype || qtype == typeANY
		case i < an+ns && rtype == typeSOA && soaRef < 0:
			// SOA RDATA: MNAME RNAME SERIAL REFRESH RETRY EXPIRE MINIMUM (RFC 1035 3.3.13).
			p := skipName(msg, rdata)
			if p >= 0 {
				p = skipName(msg, p)
			}
			if p < 0 || p+20 > rdata+rdlen {
				return false
			}
			soa, soaRef = min(ttl, binary.BigEndian.Uint32(msg[p+16:])), len(info.ttls)-1
		}
		off = rdata + rdlen
	}
	switch {
	case rcode != rcodeNXDomain && answered:
	case soaRef < 0:
		keep = 0
	default:
		keep = min(keep, soa)
		info.ttls[soaRef].ttl = soa // RFC 2308 section 3
	}
	info.keep = keep
	return true
}

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

// queryShape is what parseQuery found: a query to serve, or one malformed (FORMERR) with or without
// a question to echo.
type queryShape uint8

const (
	queryOK          queryShape = iota // serve it: q describes it
	malformed                          // FORMERR without a question: QDCOUNT is not 1 or the question does not parse
	malformedEchoing                   // FORMERR echoing the question msg[headerLen:q.end]; q.edns etc. describe a usable OPT, if any
)

// parseQuery parses the query msg (opcode QUERY) whole, before anything is forwarded or cached: the
// header, one question with an uncompressed name, no answer or authority record (RFC 1035 4.1; RFC 9619
// for QDCOUNT), and in the additional section at most one record, an OPT (RFC 6891 6.1.1: more than one
// is FORMERR) with the root as owner, its RDLENGTH inside the message and its options well formed; no
// byte after the last record. Every count must be consumed exactly: a count higher than the records
// present, or lower (bytes left over), is malformed.
//
// Other records (TSIG, SIG(0)) are refused too: the forwarder rewrites the ID and strips EDNS options,
// which would break their signatures anyway, and answers for them must not be cached. So is an IXFR
// query (RFC 1995), whose SOA sits in the authority section: zone transfers are no LAN client's
// business through a caching forwarder.
func parseQuery(msg []byte) (q question, shape queryShape) {
	if len(msg) < headerLen || binary.BigEndian.Uint16(msg[offQDCount:]) != 1 {
		return q, malformed
	}
	end := nameEnd(msg, headerLen)
	if end < 0 || end+4 > len(msg) {
		return q, malformed
	}
	q.qtype = binary.BigEndian.Uint16(msg[end:])
	q.end = end + 4
	q.udpMax = minUDPSize
	if binary.BigEndian.Uint16(msg[offANCount:]) != 0 || binary.BigEndian.Uint16(msg[offNSCount:]) != 0 {
		return q, malformedEchoing
	}
	switch binary.BigEndian.Uint16(msg[offARCount:]) {
	case 0:
		if q.end != len(msg) {
			return q, malformedEchoing
		}
		return q, queryOK
	case 1:
	default:
		return q, malformedEchoing
	}
	// The OPT: root owner (one zero byte), TYPE, CLASS (UDP size), TTL (extended RCODE, version,
	// flags), RDLENGTH, then exactly RDLENGTH bytes of options, ending the message (RFC 6891 6.1.2).
	off := q.end
	if off+optLen > len(msg) || msg[off] != 0 || binary.BigEndian.Uint16(msg[off+1:]) != typeOPT {
		return q, malformedEchoing
	}
	opt := off + 1
	rdata := opt + 10
	if rdata+int(binary.BigEndian.Uint16(msg[opt+8:])) != len(msg) || !validOptions(msg[rdata:]) {
		return q, malformedEchoing
	}
	q.edns = true
	q.opt = opt
	q.udpMax = max(int(binary.BigEndian.Uint16(msg[opt+2:])), minUDPSize)
	q.do = msg[opt+4+ednsFlagOff]&ednsDOFlag != 0
	return q, queryOK
}

// validOptions reports whether the OPT RDATA b is a sequence of options (code, length, data) filling
// it exactly, each of a length its RFC allows in a query. Options of other codes may hold anything.
func validOptions(b []byte) bool {
	for len(b) > 0 {
		if len(b) < 4 {
			return false
		}
		code := binary.BigEndian.Uint16(b)
		n := int(binary.BigEndian.Uint16(b[2:]))
		if 4+n > len(b) {
			return false
		}
		data := b[4 : 4+n]
		b = b[4+n:]
		switch code {
		case optionLLQ: // RFC 8764 section 3.2: VERSION, OPCODE, ERROR, ID, LEASE-LIFE
			if n != 18 {
				return false
			}
		case optionUL: // RFC 9664 section 4: LEASE, optionally KEY-LEASE
			if n != 4 && n != 8 {
				return false
			}
		case optionECS:
			if !validECS(data) {
				return false
			}
		case optionExpire: // RFC 7314 section 2: empty in queries, 4 bytes in answers
			if n != 0 && n != 4 {
				return false
			}
		case optionKeepalive: // RFC 7828 section 3.1: empty or a 2-byte TIMEOUT
			if n != 0 && n != 2 {
				return false
			}
		case optionEDE: // RFC 8914 section 2: INFO-CODE, then text
			if n < 2 {
				return false
			}
		case optionReporting: // RFC 9567 section 6.3: the agent domain, an uncompressed name
			if nameEnd(data, 0) != n {
				return false
			}
		case optionZoneVersion:
			// RFC 9660 section 3.1 has queries send it empty, to authoritative servers only; a LAN
			// client never sends it to a forwarder, and miekg/dns (the fuzz oracle) refuses it below
			// 2 bytes (LABELCOUNT, TYPE), as an answer holds it: so does fobgw.
			if n < 2 {
				return false
			}
		}
	}
	return true
}

// validECS reports whether data is a client subnet option as RFC 7871 section 6 defines it for a
// query: FAMILY 1 (IPv4) or 2 (IPv6) with a SOURCE PREFIX-LENGTH within the address and an ADDRESS of
// just the bytes that prefix needs, SCOPE PREFIX-LENGTH within the address too (section 7.1.1 has
// clients send 0). FAMILY 0 with both lengths 0 is what dig sends to ask for no subnet; it is kept.
func validECS(data []byte) bool {
	if len(data) < 4 {
		return false
	}
	source, scope := int(data[2]), int(data[3])
	bits := 0
	switch binary.BigEndian.Uint16(data) {
	case 0:
		return source == 0 && scope == 0 && len(data) == 4
	case 1:
		bits = 32
	case 2:
		bits = 128
	default:
		return false
	}
	return source <= bits && scope <= bits && len(data) == 4+(source+7)/8
}
