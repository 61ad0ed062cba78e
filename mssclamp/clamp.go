package mssclamp

import (
	"encoding/binary"
	"math/bits"
	"strconv"
	"strings"
)

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
	var seg []byte // the TCP segment of a SYN, holding at least the fixed header
	var limit int  // the largest MSS it may announce
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
		seg, limit = pkt[ihl:end], mtu-ipv4Overhead
	case 6:
		var r result
		if seg, r = syn6(pkt); seg == nil {
			return r
		}
		limit = mtu - ipv6Overhead
	default:
		return passed
	}

	// Clamp the MSS options of seg to limit. This is part of classify, not a
	// function of its own, to save a call on every SYN (BenchmarkClampVsPlain).
	hlen := int(seg[tcpDataOff]>>4) * 4

	if hlen < tcpMinLen || hlen > len(seg) {
		return malformed
	}
	opts := seg[tcpMinLen:hlen]
	if limit <= 0 {
		limit = 0xffff // no room for any MSS: change nothing (but still validate)
	}
	newMSS := uint16(min(limit, 0xffff))
	// The usual lists are matched whole; any other is walked (clampList).
	for i := range usualLists {
		if !usualLists[i].matches(opts) {
			continue
		}
		// The only MSS option is the first: its value is at opts[2:4], at
		// an even offset in seg, and the list is valid.
		o := binary.BigEndian.Uint16(opts[2:4])
		if o <= newMSS {
			return passed
		}
		binary.BigEndian.PutUint16(opts[2:4], newMSS)
		updateChecksum(seg, uint32(^o)+uint32(newMSS))
		return clamped
	}
	return clampList(seg, opts, newMSS)
}

// syn6 follows the IPv6 extension headers to TCP (RFC 8200 section 4) and
// returns the TCP segment if it is a SYN, or nil and what classify returns.
// As for IPv4, the headers are read as far as the packet holds them, and the
// payload length is checked only for a SYN that may be clamped.
func syn6(pkt []byte) ([]byte, result) {
	if len(pkt) < ipv6HeaderLen {
		return nil, passed
	}
	next, off := pkt[ipv6NextOff], ipv6HeaderLen
	for {
		switch next {
		case protoTCP:
			if len(pkt) < off+tcpMinLen {
				return nil, malformed
			}
			if pkt[off+tcpFlagsOff]&tcpFlagSYN == 0 {
				return nil, passed
			}
			end := len(pkt) // payload length 0: a jumbogram (RFC 2675)
			if plen := int(binary.BigEndian.Uint16(pkt[ipv6PayloadOff:])); plen != 0 {
				end = ipv6HeaderLen + plen
			}
			if end > len(pkt) || end < off+tcpMinLen {
				return nil, malformed
			}
			return pkt[off:end], passed
		case protoHopByHop, protoRouting, protoDestOpts:
			if len(pkt) < off+8 {
				return nil, malformed
			}
			next, off = pkt[off], off+(int(pkt[off+1])+1)*8
		case protoFragment:
			if len(pkt) < off+8 {
				return nil, malformed
			}
			if binary.BigEndian.Uint16(pkt[off+2:])&0xfff8 != 0 {
				return nil, passed // not the first fragment
			}
			next, off = pkt[off], off+8
		default:
			return nil, passed // AH, ESP, No Next Header, unknown: not ours to parse
		}
	}
}

// clampList clamps the MSS options of opts, the option list of seg, to
// newMSS.
func clampList(seg, opts []byte, newMSS uint16) result {
	// Walk the whole list (RFC 9293 section 3.1) before changing anything: a
	// malformed list is passed unchanged, even if an MSS option precedes the
	// damage. Options are skipped by their length; End of Option List ends
	// the walk. The walk notes the MSS options above newMSS and sums the
	// checksum change: RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m').
	var above uint64 // bit i set: opts[i] starts an MSS option above newMSS
	var delta uint32
	n := uint(len(opts)) // at most 40
	for i := uint(0); i < n; {
		kind := opts[i]
		if kind <= optNOP {
			if kind == optEnd {
				break
			}
			i++
			continue
		}
		if n-i < 2 {
			return malformed
		}
		l := uint(opts[i+1])
		if l < 2 || l > n-i {
			return malformed
		}
		if kind == optMSS {
			if l != optMSSLen {
				return malformed
			}
			if o := binary.BigEndian.Uint16(opts[i+2 : i+4]); o > newMSS {
				above |= 1 << i
				// The MSS value sits at seg offset tcpMinLen+i+2. At an odd
				// offset its bytes fall into two checksum words, and its
				// contribution to the one's complement sum is the byte-swapped
				// value (256*256 = 1 mod 65535).
				m := newMSS
				if i%2 == 1 {
					o, m = bits.ReverseBytes16(o), bits.ReverseBytes16(m)
				}
				delta += uint32(^o) + uint32(m)
			}
		}
		i += l
	}
	if above == 0 {
		return passed
	}
	for ; above != 0; above &= above - 1 {
		i := bits.TrailingZeros64(above)
		binary.BigEndian.PutUint16(opts[i+2:i+4], newMSS)
	}
	updateChecksum(seg, delta)
	return clamped
}

// updateChecksum adds delta, a sum of 16-bit words, to the TCP checksum of
// seg: RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m').
func updateChecksum(seg []byte, delta uint32) {
	sum := uint32(^binary.BigEndian.Uint16(seg[tcpChecksum:])) + delta
	sum = sum&0xffff + sum>>16
	sum = sum&0xffff + sum>>16
	binary.BigEndian.PutUint16(seg[tcpChecksum:], ^uint16(sum))
}

// usualLists are the option lists the usual stacks put in their SYNs and
// SYN-ACKs, MSS first. ".." stands for a byte of an option value (MSS,
// window scale shift, timestamps), which may be anything. Each is a valid
// list whose only MSS option is the first (TestUsualLists).
//
// Why patterns: timed in one run against plainClamp (plain_test.go: one
// walk of the whole list under the same contract), a SYN whose list is
// walked (clampList) costs 1.0-1.07x the plain one, and one whose list
// matches here 0.5-0.7x (BenchmarkClampVsPlain; bench/RESULTS.md). A match
// is three masked 64-bit compares where the walk branches on every option.
var usualLists = [...]optPattern{
	// Linux, Android: MSS, SACK permitted, timestamps, NOP, window scale.
	pattern("02 04 .. .. 04 02 08 0a .. .. .. .. .. .. .. .. 01 03 03 .."),
	// Windows: MSS, NOP, window scale, NOP, NOP, SACK permitted.
	pattern("02 04 .. .. 01 03 03 .. 01 01 04 02"),
	// macOS, iOS: MSS, NOP, window scale, NOP, NOP, timestamps, SACK
	// permitted, End of Option List, padding.
	pattern("02 04 .. .. 01 03 03 .. 01 01 08 0a .. .. .. .. .. .. .. .. 04 02 00 00"),
	// Linux SYN-ACK to a SYN without timestamps (Windows): MSS, NOP, NOP,
	// SACK permitted, NOP, window scale.
	pattern("02 04 .. .. 01 01 04 02 01 03 03 .."),
}

// optPattern is an option list of n bytes, 8 <= n <= 24, read as the three
// little-endian 64-bit words at 0, min(8, n-8) and n-8, which cover it: opts
// matches if len(opts) == n and word&mask == want for each.
type optPattern struct {
	src        string // as given to pattern
	n          int
	want, mask [3]uint64
}

// matches reports whether opts is an instance of p.
func (p *optPattern) matches(opts []byte) bool {
	n := len(opts)
	if n != p.n {
		return false
	}
	le := binary.LittleEndian
	diff := (le.Uint64(opts)^p.want[0])&p.mask[0] |
		(le.Uint64(opts[min(8, n-8):])^p.want[1])&p.mask[1] |
		(le.Uint64(opts[n-8:])^p.want[2])&p.mask[2]
	return diff == 0
}

// pattern parses s, hexadecimal bytes and ".." for any byte, separated by
// spaces. It panics on a malformed s: the patterns are constants of this
// package.
func pattern(s string) optPattern {
	fields := strings.Fields(s)
	n := len(fields)
	if n%4 != 0 || n < 8 || n > 24 {
		panic("mssclamp: pattern length not a multiple of 4 from 8 to 24: " + s)
	}
	p := optPattern{src: s, n: n}
	for k, off := range [3]int{0, min(8, n-8), n - 8} {
		for j, f := range fields[off : off+8] {
			if f == ".." {
				continue
			}
			b, err := strconv.ParseUint(f, 16, 8)
			if err != nil {
				panic("mssclamp: bad pattern " + s + ": " + err.Error())
			}
			p.want[k] |= b << (8 * j)
			p.mask[k] |= 0xff << (8 * j)
		}
	}
	return p
}
