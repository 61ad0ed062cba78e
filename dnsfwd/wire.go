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

// parseQuestion validates the header's QDCOUNT of 1 and the question of msg, an uncompressed name then
// QTYPE and QCLASS, and returns it with udpMax 512 and no EDNS. It reports false for anything else.
func parseQuestion(msg []byte) (q question, ok bool) {
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
	return q, true
}

// setOPT records in q the OPT record whose TYPE field is at opt, which msg holds up to its RDLENGTH:
// the sender's UDP payload size, at least 512 (RFC 6891 6.2.5), and the DO bit (RFC 3225).
func (q *question) setOPT(msg []byte, opt int) {
	q.edns = true
	q.opt = opt
	q.udpMax = max(int(binary.BigEndian.Uint16(msg[opt+2:])), minUDPSize)
	q.do = msg[opt+4+ednsFlagOff]&ednsDOFlag != 0
}

// parseMessage validates the header and the single question of msg and walks the remaining records
// far enough to find an OPT record. It reports false for anything but one question with an
// uncompressed name; records after the question that do not parse are ignored (EDNS is then absent).
func parseMessage(msg []byte) (q question, ok bool) {
	q, ok = parseQuestion(msg)
	if !ok {
		return q, false
	}
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
			q.setOPT(msg, off)
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
