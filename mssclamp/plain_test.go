package mssclamp

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// plainClamp is the yardstick of BenchmarkClampVsPlain: Clamp as anyone
// would first write it, with the same contract (TestPlainClamp holds it to
// the cases of TestClamp) and no shortcut. It parses the IP header, follows
// the IPv6 extension headers, walks the whole TCP option list once, noting
// the MSS options above the limit, and then rewrites each of them with an
// RFC 1624 update of the checksum words its two bytes fall into.
func plainClamp(pkt []byte, mtu int) bool {
	if len(pkt) < 20 {
		return false
	}
	var off, end, limit int // TCP segment pkt[off:end], largest MSS
	switch pkt[0] >> 4 {
	case 4:
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || pkt[9] != 6 || binary.BigEndian.Uint16(pkt[6:])&0x1fff != 0 {
			return false
		}
		off, end, limit = ihl, int(binary.BigEndian.Uint16(pkt[2:])), mtu-40
	case 6:
		if len(pkt) < 40 {
			return false
		}
		next := pkt[6]
		off = 40
		for next != 6 {
			if len(pkt) < off+8 {
				return false
			}
			switch next {
			case 0, 43, 60: // Hop-by-Hop, Routing, Destination Options
				next, off = pkt[off], off+(int(pkt[off+1])+1)*8
			case 44: // Fragment: only the first carries the TCP header
				if binary.BigEndian.Uint16(pkt[off+2:])&0xfff8 != 0 {
					return false
				}
				next, off = pkt[off], off+8
			default:
				return false
			}
		}
		end = len(pkt) // payload length 0: a jumbogram
		if plen := int(binary.BigEndian.Uint16(pkt[4:])); plen != 0 {
			end = 40 + plen
		}
		limit = mtu - 60
	default:
		return false
	}
	if end > len(pkt) || end < off+20 {
		return false
	}
	seg := pkt[off:end]
	if seg[13]&0x02 == 0 || limit <= 0 {
		return false
	}
	hlen := int(seg[12]>>4) * 4
	if hlen < 20 || hlen > len(seg) {
		return false
	}
	newMSS := uint16(min(limit, 0xffff))

	var at [10]int // offsets in seg of MSS values above newMSS (40 option bytes hold at most 10)
	n := 0
walk:
	for i := 20; i < hlen; {
		switch seg[i] {
		case 0: // End of Option List
			break walk
		case 1: // NOP
			i++
			continue
		}
		if i+2 > hlen || seg[i+1] < 2 || i+int(seg[i+1]) > hlen {
			return false
		}
		if seg[i] == 2 {
			if seg[i+1] != 4 {
				return false
			}
			if binary.BigEndian.Uint16(seg[i+2:]) > newMSS {
				at[n] = i + 2
				n++
			}
		}
		i += int(seg[i+1])
	}
	for _, j := range at[:n] {
		// The words holding seg[j] and seg[j+1]: one word if j is even, two if odd.
		w0, w1 := j&^1, (j+1)&^1
		old0, old1 := binary.BigEndian.Uint16(seg[w0:]), binary.BigEndian.Uint16(seg[w1:])
		binary.BigEndian.PutUint16(seg[j:], newMSS)
		plainUpdate(seg, old0, binary.BigEndian.Uint16(seg[w0:]))
		if w1 != w0 {
			plainUpdate(seg, old1, binary.BigEndian.Uint16(seg[w1:]))
		}
	}
	return n > 0
}

// plainUpdate changes the TCP checksum of seg for one 16-bit word going from
// m to m1: RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m').
func plainUpdate(seg []byte, m, m1 uint16) {
	sum := uint32(^binary.BigEndian.Uint16(seg[16:])) + uint32(^m) + uint32(m1)
	sum = sum&0xffff + sum>>16
	sum = sum&0xffff + sum>>16
	binary.BigEndian.PutUint16(seg[16:], ^uint16(sum))
}

// TestPlainClamp holds the yardstick to the cases of TestClamp, so that the
// benchmarks compare two implementations of the same contract.
func TestPlainClamp(t *testing.T) {
	for _, tc := range clampCases() {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want == nil {
				want = tc.pkt
			}
			got := bytes.Clone(tc.pkt)
			if changed := plainClamp(got, tc.mtu); changed != (tc.want != nil) {
				t.Errorf("plainClamp = %v, want %v", changed, tc.want != nil)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("packet after plainClamp:\n got %x\nwant %x", got, want)
			}
		})
	}
}
