package dnsfwd

import "encoding/binary"

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
