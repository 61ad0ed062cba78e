package chachapoly

import (
	"encoding/binary"
	"math/bits"
)

// poly is a Poly1305 state: h in three 64-bit words (h2 small), the clamped
// r, and s. Every message block it takes is a whole 16 bytes with 2^128
// added: the AEAD's MAC input is padded to 16 bytes throughout.
type poly struct {
	h0, h1, h2 uint64
	r0, r1     uint64
	s0, s1     uint64
}

func (p *poly) init(key *[32]byte) {
	p.h0, p.h1, p.h2 = 0, 0, 0
	p.r0 = binary.LittleEndian.Uint64(key[0:8]) & 0x0ffffffc0fffffff
	p.r1 = binary.LittleEndian.Uint64(key[8:16]) & 0x0ffffffc0ffffffc
	p.s0 = binary.LittleEndian.Uint64(key[16:24])
	p.s1 = binary.LittleEndian.Uint64(key[24:32])
}

// mulR returns h*r mod 2^130-5, partly reduced (the result's top word is at
// most 4). h2 must be at most 7: r's top bits are clear, so no column
// overflows.
func mulR(h0, h1, h2, r0, r1 uint64) (uint64, uint64, uint64) {
	hi00, t0 := bits.Mul64(h0, r0)
	hi01, lo01 := bits.Mul64(h0, r1)
	hi10, lo10 := bits.Mul64(h1, r0)
	hi11, lo11 := bits.Mul64(h1, r1)

	t1, c1 := bits.Add64(hi00, lo01, 0)
	t1, c1b := bits.Add64(t1, lo10, 0)
	t2, c2 := bits.Add64(hi01, hi10, c1)
	t2, c2b := bits.Add64(t2, lo11, c1b)
	t2, c2c := bits.Add64(t2, h2*r0, 0)
	t3 := hi11 + h2*r1 + c2 + c2b + c2c

	// t = t0 + t1<<64 + t2<<128 + t3<<192. Above bit 130 is c; 2^130 = 5,
	// so add 4c (t2 with its low two bits cleared, and t3) and c.
	n0, cc := bits.Add64(t0, t2&^3, 0)
	n1, cc := bits.Add64(t1, t3, cc)
	n2 := t2&3 + cc
	n0, cc = bits.Add64(n0, t2>>2|t3<<62, 0)
	n1, cc = bits.Add64(n1, t3>>2, cc)
	n2 += cc
	return n0, n1, n2
}

// blocks takes len(m)/16 whole blocks.
func (p *poly) blocks(m []byte) {
	h0, h1, h2 := p.h0, p.h1, p.h2
	for len(m) >= 16 {
		var c uint64
		h0, c = bits.Add64(h0, binary.LittleEndian.Uint64(m[0:8]), 0)
		h1, c = bits.Add64(h1, binary.LittleEndian.Uint64(m[8:16]), c)
		h2 += 1 + c
		h0, h1, h2 = mulR(h0, h1, h2, p.r0, p.r1)
		m = m[16:]
	}
	p.h0, p.h1, p.h2 = h0, h1, h2
}

// padded takes m as whole blocks, the last one filled with zeros.
func (p *poly) padded(m []byte) {
	n := len(m) &^ 15
	p.blocks(m[:n])
	if n < len(m) {
		var b [16]byte
		copy(b[:], m[n:])
		p.blocks(b[:])
	}
}

// sum writes the tag.
func (p *poly) sum(tag []byte) {
	// Carry above 2^130 once more, so that h < 2^130 + 35 < 2p.
	h0, h1, h2 := full(p.h0, p.h1, p.h2)
	// h - p = h + 5 - 2^130: take it when h+5 reaches 2^130.
	g0, cc := bits.Add64(h0, 5, 0)
	g1, cc := bits.Add64(h1, 0, cc)
	g2 := h2 + cc
	keep := (g2 >> 2) - 1 // all ones when h+5 < 2^130
	h0 = h0&keep | g0&^keep
	h1 = h1&keep | g1&^keep
	h0, cc = bits.Add64(h0, p.s0, 0)
	h1, _ = bits.Add64(h1, p.s1, cc)
	binary.LittleEndian.PutUint64(tag[0:8], h0)
	binary.LittleEndian.PutUint64(tag[8:16], h1)
}

// vecPowers is what polyGroups reads: five vectors of eight lanes, the
// limbs (r0, r1, r2, 20*r1, 20*r2) of the power of r each lane's blocks
// still need at the end. Lane 0's, r^8, is also what every group is
// multiplied by.
type vecPowers [5][8]uint64

const mask44 = 1<<44 - 1

// limbs44 splits h (h2 at most 7) into 44, 44 and 43 bits.
func limbs44(h0, h1, h2 uint64) (uint64, uint64, uint64) {
	return h0 & mask44, (h0>>44 | h1<<20) & mask44, h1>>24 | h2<<40
}

// put writes h's limbs, and 20 times the upper two, into lane of f.
func put(f *vecPowers, lane int, h0, h1, h2 uint64) {
	l0, l1, l2 := limbs44(h0, h1, h2)
	f[0][lane], f[1][lane], f[2][lane], f[3][lane], f[4][lane] = l0, l1, l2, 20*l1, 20*l2
}

// groups takes len(m)/128 groups of eight blocks through polyGroups. The
// powers of r stay partly reduced (top word at most 4): the vector code
// takes limbs up to 52 bits.
func (p *poly) groups(m []byte) {
	n := len(m) / 128
	if n == 0 {
		return
	}
	var pw vecPowers
	// Lane k holds the blocks at positions 0, 4, 1, 5, 2, 6, 3, 7 of each
	// group, which need r^8, r^4, r^7, r^3, r^6, r^2, r^5, r^1.
	r0, r1 := p.r0, p.r1
	a0, a1, a2 := r0, r1, uint64(0)
	for k, lane := range [8]int{7, 5, 3, 1, 6, 4, 2, 0} { // the lane that needs r^(k+1)
		if k > 0 {
			a0, a1, a2 = mulR(a0, a1, a2, r0, r1)
		}
		put(&pw, lane, a0, a1, a2)
	}

	var acc [24]uint64
	acc[0], acc[8], acc[16] = limbs44(p.h0, p.h1, p.h2)
	polyGroups(&acc, &pw, &m[0], n)
	var s0, s1, s2 uint64
	for i := 0; i < 8; i++ {
		s0 += acc[i]
		s1 += acc[8+i]
		s2 += acc[16+i]
	}
	// h = s0 + s1<<44 + s2<<88
	h0, cc := bits.Add64(s0, s1<<44, 0)
	h1, cc := bits.Add64(s1>>20, s2<<24, cc)
	h2 := s2>>40 + cc
	p.h0, p.h1, p.h2 = full(h0, h1, h2)
}

// full carries h's bits above 2^130 down (times 5), leaving h2 at most 4.
func full(h0, h1, h2 uint64) (uint64, uint64, uint64) {
	c := h2 >> 2
	h2 &= 3
	var cc uint64
	h0, cc = bits.Add64(h0, c*5, 0)
	h1, cc = bits.Add64(h1, 0, cc)
	return h0, h1, h2 + cc
}
