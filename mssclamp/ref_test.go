package mssclamp

import "encoding/binary"

// This file is an independent, deliberately plain reading of the rules of
// Clamp, used to check it in table tests and under fuzzing.

// refTCP describes where the TCP segment of a packet is, as the reference
// reads it.
type refTCP struct {
	off, end int    // TCP segment pkt[off:end]
	v6       bool   // IPv6 (pseudo-header and limit differ)
	syn      bool   // SYN flag set
	optsOK   bool   // the option list parses (only computed for SYNs)
	mss      []int  // offsets in pkt of the MSS values (2 bytes each), before any End of Option List
	headerOK bool   // IP length, data offset consistent: the segment may be clamped
	pseudo   uint32 // pseudo-header sum for the checksum
}

// refParse returns the TCP segment of pkt, or ok false if pkt is not a TCP
// packet carrying the start of a TCP header (not TCP, non-first fragment,
// unparseable IP).
func refParse(pkt []byte) (r refTCP, ok bool) {
	if len(pkt) < 20 {
		return r, false
	}
	switch pkt[0] >> 4 {
	case 4:
		ihl := int(pkt[0]&15) * 4
		if pkt[9] != 6 || ihl < 20 || len(pkt) < ihl+20 {
			return r, false
		}
		if frag := int(pkt[6]&0x1f)<<8 | int(pkt[7]); frag != 0 {
			return r, false
		}
		total := int(pkt[2])<<8 | int(pkt[3])
		r.off, r.end = ihl, total
		r.headerOK = total <= len(pkt) && total >= ihl+20
		if r.headerOK {
			r.pseudo = sum16(pkt[12:20]) + 6 + uint32(total-ihl)
		}
	case 6:
		if len(pkt) < 40 {
			return r, false
		}
		r.v6 = true
		plen := int(pkt[4])<<8 | int(pkt[5])
		next, off := int(pkt[6]), 40
	chain:
		for {
			switch next {
			case 6:
				break chain
			case 0, 43, 60:
				if off+8 > len(pkt) {
					return r, false
				}
				next = int(pkt[off])
				off += 8 * (1 + int(pkt[off+1]))
			case 44:
				if off+8 > len(pkt) {
					return r, false
				}
				if (int(pkt[off+2])<<8|int(pkt[off+3]))>>3 != 0 {
					return r, false
				}
				next = int(pkt[off])
				off += 8
			default:
				return r, false
			}
		}
		if off+20 > len(pkt) {
			return r, false
		}
		r.off, r.end = off, 40+plen
		if plen == 0 {
			r.end = len(pkt)
		}
		r.headerOK = r.end <= len(pkt) && r.end >= off+20
		if r.headerOK {
			r.pseudo = sum16(pkt[8:40]) + 6 + uint32(r.end-off)
		}
	default:
		return r, false
	}
	tcp := pkt[r.off:]
	r.syn = tcp[13]&2 != 0
	if !r.syn || !r.headerOK {
		return r, true
	}
	hlen := int(tcp[12]>>4) * 4
	if hlen < 20 || r.off+hlen > r.end {
		r.headerOK = false
		return r, true
	}
	r.optsOK = true
	opts := tcp[20:hlen]
	ended := false
	for i := 0; i < len(opts); {
		switch {
		case opts[i] == 0:
			ended = true
			i = len(opts)
		case opts[i] == 1:
			i++
		case i+2 > len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts):
			r.optsOK = false
			i = len(opts)
		case opts[i] == 2 && opts[i+1] != 4:
			r.optsOK = false
			i = len(opts)
		default:
			if opts[i] == 2 && !ended {
				r.mss = append(r.mss, r.off+20+i+2)
			}
			i += int(opts[i+1])
		}
	}
	return r, true
}

// refClampable reports whether Clamp must change pkt for mtu.
func refClampable(pkt []byte, mtu int) bool {
	r, ok := refParse(pkt)
	if !ok || !r.syn || !r.headerOK || !r.optsOK {
		return false
	}
	limit := mtu - 40
	if r.v6 {
		limit = mtu - 60
	}
	if limit <= 0 {
		return false
	}
	for _, at := range r.mss {
		if int(binary.BigEndian.Uint16(pkt[at:])) > limit {
			return true
		}
	}
	return false
}

// refChecksumOK reports whether the TCP checksum of the segment r is valid.
func refChecksumOK(pkt []byte, r refTCP) bool {
	return fold(r.pseudo+sum16(pkt[r.off:r.end])) == 0xffff
}

// refChecksum returns the TCP checksum the segment r should carry.
func refChecksum(pkt []byte, r refTCP) uint16 {
	c := make([]byte, r.end-r.off)
	copy(c, pkt[r.off:r.end])
	c[16], c[17] = 0, 0
	return ^fold(r.pseudo + sum16(c))
}

// sum16 is the RFC 1071 sum of b as big-endian 16-bit words, unfolded.
func sum16(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
