package dnsfwd

import "encoding/binary"

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
	q, ok := parseQuestion(msg)
	if !ok {
		return q, malformed
	}
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
	q.setOPT(msg, opt)
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
