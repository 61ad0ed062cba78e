package mssclamp

import "encoding/binary"

// Header offsets and constants (RFC 791, RFC 8200, RFC 9293).
const (
	ipv4MinLen      = 20 // IPv4 header without options
	ipv4TotalLenOff = 2  // total length, 16 bits
	ipv4FragOff     = 6  // flags (3 bits) and fragment offset (13 bits)
	ipv4ProtoOff    = 9  // protocol
	ipv6HeaderLen   = 40 // fixed IPv6 header
	ipv6PayloadOff  = 4  // payload length, 16 bits
	ipv6NextOff     = 6  // next header

	protoHopByHop = 0
	protoTCP      = 6
	protoRouting  = 43
	protoFragment = 44
	protoDestOpts = 60

	tcpMinLen    = 20 // TCP header without options
	tcpDataOff   = 12 // data offset in the upper 4 bits
	tcpFlagsOff  = 13 // CWR ECE URG ACK PSH RST SYN FIN
	tcpChecksum  = 16
	tcpFlagSYN   = 0x02
	optEnd       = 0 // End of Option List
	optNOP       = 1 // No-Operation
	optMSS       = 2 // Maximum Segment Size, length 4
	optMSSLen    = 4
	ipv4Overhead = 40 // IPv4 + TCP headers without options (RFC 6691)
	ipv6Overhead = 60 // IPv6 + TCP headers without options (RFC 6691)
)

// result is what classify did with one packet.
type result uint8

const (
	// passed: not a TCP SYN, or one whose MSS is absent or already low enough; unchanged.
	passed result = iota
	// clamped: the MSS option was lowered and the TCP checksum updated.
	clamped
	// malformed: a TCP packet whose headers could not be parsed far enough; unchanged.
	malformed
)

// Clamp lowers the MSS option of a TCP SYN or SYN-ACK to mtu-40 if pkt is
// IPv4, or to mtu-60 if pkt is IPv6, in place, updates the TCP checksum
// incrementally (RFC 1624) and reports whether pkt changed. pkt is one IP
// packet without any other header; its length never changes.
//
// An MSS is never raised, a missing MSS option stays missing, and every MSS
// option of the list is clamped, at any alignment. Clamp leaves unchanged:
// packets that are not TCP, TCP segments without SYN, non-first fragments,
// and packets whose IP header, IPv6 extension header chain, TCP header or
// TCP option list is truncated or malformed (an option of length below 2 or
// past the TCP header, or an MSS option whose length is not 4). Options
// after an End-of-Option-List are ignored. A first fragment is clamped when
// the whole TCP header lies inside it.
//
// IPv4 options (IHL > 5) are skipped. For IPv6 the Hop-by-Hop Options,
// Routing and Destination Options headers are followed, and a Fragment
// header is followed only for the first fragment (offset 0); a packet with
// any other header before TCP (AH, ESP, Mobility, an unknown one, or No Next
// Header) is left unchanged.
//
// If mtu leaves no room for a positive MSS (mtu <= 40 for IPv4, mtu <= 60
// for IPv6) nothing is changed.
func Clamp(pkt []byte, mtu int) bool {
	return !fastPass(pkt) && classify(pkt, mtu) == clamped
}

// fastPass reports whether pkt is certainly left unchanged and uncounted,
// checking only the bulk of traffic: IPv4 without options or IPv6 without
// extension headers that is not TCP or TCP without SYN. It is small enough
// to be inlined into the loops of Device.
func fastPass(pkt []byte) bool {
	if len(pkt) < ipv4MinLen+tcpMinLen {
		return false
	}
	if h := pkt[:ipv4MinLen+tcpMinLen]; h[0] == 0x45 {
		return h[ipv4ProtoOff] != protoTCP || h[ipv4MinLen+tcpFlagsOff]&tcpFlagSYN == 0
	}
	if len(pkt) < ipv6HeaderLen+tcpMinLen {
		return false
	}
	h := pkt[:ipv6HeaderLen+tcpMinLen]
	return h[0]>>4 == 6 && h[ipv6NextOff] == protoTCP && h[ipv6HeaderLen+tcpFlagsOff]&tcpFlagSYN == 0
}

// classify is Clamp returning what happened, for the counters of Device.
func classify(pkt []byte, mtu int) result {
	if len(pkt) < ipv4MinLen {
		return passed // not even an IPv4 header: not recognisably TCP
	}
	switch pkt[0] >> 4 {
	case 4:
		if pkt[ipv4ProtoOff] != protoTCP {
			return passed
		}
		// Non-first fragments carry no TCP header.
		if binary.BigEndian.Uint16(pkt[ipv4FragOff:])&0x1fff != 0 {
			return passed
		}
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < ipv4MinLen || len(pkt) < ihl+tcpMinLen {
			return malformed
		}
		if pkt[ihl+tcpFlagsOff]&tcpFlagSYN == 0 {
			return passed
		}
		end := int(binary.BigEndian.Uint16(pkt[ipv4TotalLenOff:]))
		if end > len(pkt) || end < ihl+tcpMinLen {
			return malformed
		}
		return clampSYN(pkt[ihl:end], mtu-ipv4Overhead)
	case 6:
		return classify6(pkt, mtu)
	}
	return passed
}

// classify6 follows the IPv6 extension headers to TCP (RFC 8200 section 4).
// As for IPv4, the headers are read as far as the packet holds them, and the
// payload length is checked only for a SYN that may be clamped.
func classify6(pkt []byte, mtu int) result {
	if len(pkt) < ipv6HeaderLen {
		return passed
	}
	next, off := pkt[ipv6NextOff], ipv6HeaderLen
	for {
		switch next {
		case protoTCP:
			if len(pkt) < off+tcpMinLen {
				return malformed
			}
			if pkt[off+tcpFlagsOff]&tcpFlagSYN == 0 {
				return passed
			}
			end := len(pkt) // payload length 0: a jumbogram (RFC 2675)
			if plen := int(binary.BigEndian.Uint16(pkt[ipv6PayloadOff:])); plen != 0 {
				end = ipv6HeaderLen + plen
			}
			if end > len(pkt) || end < off+tcpMinLen {
				return malformed
			}
			return clampSYN(pkt[off:end], mtu-ipv6Overhead)
		case protoHopByHop, protoRouting, protoDestOpts:
			if len(pkt) < off+8 {
				return malformed
			}
			next, off = pkt[off], off+(int(pkt[off+1])+1)*8
		case protoFragment:
			if len(pkt) < off+8 {
				return malformed
			}
			if binary.BigEndian.Uint16(pkt[off+2:])&0xfff8 != 0 {
				return passed // not the first fragment
			}
			next, off = pkt[off], off+8
		default:
			return passed // AH, ESP, No Next Header, unknown: not ours to parse
		}
	}
}

// maxMSSOpts bounds the MSS options of one list: 40 option bytes / 4.
const maxMSSOpts = 10

// clampSYN clamps the MSS options of seg, a TCP segment with SYN set that
// holds at least the fixed TCP header, to limit.
func clampSYN(seg []byte, limit int) result {
	hlen := int(seg[tcpDataOff]>>4) * 4
	if hlen < tcpMinLen || hlen > len(seg) {
		return malformed
	}
	opts := seg[tcpMinLen:hlen]
	if limit <= 0 {
		limit = 0xffff // no room for any MSS: change nothing (but still validate)
	}
	newMSS := uint16(min(limit, 0xffff))
	// Walk the whole list (RFC 9293 section 3.1) before changing anything: a
	// malformed list is passed unchanged, even if an MSS option precedes the
	// damage. Options are skipped by their length; End of Option List ends
	// the walk. The walk notes the MSS options above limit and sums the
	// checksum change: RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m').
	var at [maxMSSOpts]uint8 // offsets in opts of MSS options above limit
	n := 0
	var delta uint32
	for i := 0; i < len(opts); {
		kind := opts[i]
		if kind == optNOP {
			i++
			continue
		}
		if kind == optEnd {
			break
		}
		if i+1 >= len(opts) {
			return malformed
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			return malformed
		}
		if kind == optMSS {
			if l != optMSSLen {
				return malformed
			}
			if o := uint16(opts[i+2])<<8 | uint16(opts[i+3]); o > newMSS && n < len(at) {
				at[n] = uint8(i)
				n++
				// The MSS value sits at seg offset tcpMinLen+i+2. At an odd
				// offset its bytes fall into two checksum words, and its
				// contribution to the one's complement sum is the byte-swapped
				// value (256*256 = 1 mod 65535).
				m := newMSS
				if i%2 == 1 {
					o, m = o<<8|o>>8, m<<8|m>>8
				}
				delta += uint32(^o) + uint32(m)
			}
		}
		i += l
	}
	if n == 0 {
		return passed
	}
	for _, i := range at[:n] {
		opts[i+2], opts[i+3] = byte(newMSS>>8), byte(newMSS)
	}
	sum := uint32(^binary.BigEndian.Uint16(seg[tcpChecksum:])) + delta
	sum = sum&0xffff + sum>>16
	sum = sum&0xffff + sum>>16
	binary.BigEndian.PutUint16(seg[tcpChecksum:], ^uint16(sum))
	return clamped
}
