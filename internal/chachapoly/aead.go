// Package chachapoly is ChaCha20-Poly1305 (RFC 8439) for the tunnel's data
// packets, with AVX-512 on amd64 processors that have AVX512-VL and
// AVX512-IFMA (Intel Ice Lake, Tiger Lake and later, AMD Zen 4 and later;
// asking for IFMA leaves out the first AVX-512 server chips, Skylake-SP and
// Cascade Lake, whose 512-bit instructions are known to lower the core's
// clock). Everywhere else New returns golang.org/x/crypto's implementation.
package chachapoly

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"unsafe"

	"golang.org/x/crypto/chacha20poly1305"
)

const (
	KeySize   = 32
	NonceSize = 12
	Overhead  = 16
)

var errOpen = errors.New("chacha20poly1305: message authentication failed")

// Implementation names what New hands out on this processor, for the log
// and `fobgw bench`: "AVX-512" (this package's) or "x/crypto".
func Implementation() string {
	if fast {
		return "AVX-512"
	}
	return "x/crypto"
}

// New returns the AEAD for key, this package's where the processor has
// what it needs, x/crypto's otherwise.
func New(key []byte) (cipher.AEAD, error) {
	small, err := chacha20poly1305.New(key)
	if err != nil || !fast {
		return small, err
	}
	a := &aead{small: small}
	for i := range a.key {
		a.key[i] = binary.LittleEndian.Uint32(key[4*i:])
	}
	return a, nil
}

// minLen is the shortest text this package seals or opens itself: below
// it x/crypto's single pass, which interleaves its Poly1305 with the
// ChaCha20 rounds, is faster than two passes whose setup is a larger share
// (BenchmarkSeal, BenchmarkOpen).
const minLen = 640

type aead struct {
	key   [8]uint32
	small cipher.AEAD // x/crypto's, for texts shorter than minLen
}

func (*aead) NonceSize() int { return NonceSize }
func (*aead) Overhead() int  { return Overhead }

// state is the ChaCha20 state for nonce at counter 0.
func (a *aead) state(st *[16]uint32, nonce []byte) {
	st[0], st[1], st[2], st[3] = 0x61707865, 0x3320646e, 0x79622d32, 0x6b206574
	copy(st[4:12], a.key[:])
	st[12] = 0
	st[13] = binary.LittleEndian.Uint32(nonce[0:4])
	st[14] = binary.LittleEndian.Uint32(nonce[4:8])
	st[15] = binary.LittleEndian.Uint32(nonce[8:12])
}

// xor XORs src into dst (len(dst) >= len(src); dst may be src) with the key
// stream of blocks st[12], st[12]+1, ... from byte off of the first block on,
// sixteen blocks at a time while more than eight are needed. If polyKey is
// not nil, it gets the first 32 bytes of the first block.
func xor(st *[16]uint32, ks *[1024]byte, dst, src []byte, off int, polyKey *[32]byte) {
	for {
		size := 512
		if len(src)+off > 512 {
			size = 1024
		}
		take := min(len(src), size-off)
		whole := take &^ 31
		var d, s *byte
		if whole > 0 {
			d, s = &dst[0], &src[0]
		}
		if size == 1024 {
			blocks16(st, ks, d, s, whole, off)
		} else {
			blocks8(st, (*[512]byte)(ks[:512]), d, s, whole, off)
		}
		if whole < take {
			subtle.XORBytes(dst[whole:take], src[whole:take], ks[off+whole:])
		}
		if polyKey != nil {
			copy(polyKey[:], ks[:32])
			polyKey = nil
		}
		dst, src = dst[take:], src[take:]
		if len(src) == 0 {
			return
		}
		st[12] += uint32(size / 64)
		off = 0
	}
}

// tag writes the Poly1305 tag, under polyKey, of RFC 8439's MAC input: ad
// and ct, each padded to 16 bytes, then both lengths. Ciphertexts of two
// groups of eight blocks or more go through the vector code.
func tag(out []byte, polyKey *[32]byte, ad, ct []byte) {
	var p poly
	p.init(polyKey)
	p.padded(ad)
	if len(ct) >= 256 {
		n := len(ct) &^ 127
		p.groups(ct[:n])
		p.padded(ct[n:])
	} else {
		p.padded(ct)
	}
	var lens [16]byte
	binary.LittleEndian.PutUint64(lens[0:8], uint64(len(ad)))
	binary.LittleEndian.PutUint64(lens[8:16], uint64(len(ct)))
	p.blocks(lens[:])
	p.sum(out)
}

func (a *aead) Seal(dst, nonce, plaintext, additionalData []byte) []byte {
	if len(nonce) != NonceSize {
		panic("chacha20poly1305: bad nonce length passed to Seal")
	}
	if len(plaintext) < minLen {
		return a.small.Seal(dst, nonce, plaintext, additionalData)
	}
	if uint64(len(plaintext)) > (1<<38)-64 {
		panic("chacha20poly1305: plaintext too large")
	}
	ret, out := sliceForAppend(dst, len(plaintext)+Overhead)
	if inexactOverlap(out, plaintext) {
		panic("chacha20poly1305: invalid buffer overlap")
	}
	a.seal(out, nonce, plaintext, additionalData)
	return ret
}

// seal writes plaintext's ciphertext and tag to out (len(plaintext)+16).
func (a *aead) seal(out, nonce, plaintext, additionalData []byte) {
	var st [16]uint32
	var ks [1024]byte
	a.state(&st, nonce)
	// Block 0 is the MAC key, the text takes blocks 1 on.
	var polyKey [32]byte
	xor(&st, &ks, out, plaintext, 64, &polyKey)
	tag(out[len(plaintext):], &polyKey, additionalData, out[:len(plaintext)])
}

func (a *aead) Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error) {
	if len(nonce) != NonceSize {
		panic("chacha20poly1305: bad nonce length passed to Open")
	}
	if len(ciphertext) < minLen+Overhead {
		return a.small.Open(dst, nonce, ciphertext, additionalData)
	}
	if uint64(len(ciphertext)) > (1<<38)-48 {
		panic("chacha20poly1305: ciphertext too large")
	}
	ct := ciphertext[:len(ciphertext)-Overhead]
	ret, out := sliceForAppend(dst, len(ct))
	if inexactOverlap(out, ciphertext) {
		panic("chacha20poly1305: invalid buffer overlap")
	}
	if !a.open(out, nonce, ciphertext, additionalData) {
		return nil, errOpen
	}
	return ret, nil
}

// open checks ciphertext's tag and, if it holds, writes the plaintext to
// out (len(ciphertext)-16); if it does not, out is left as it was.
func (a *aead) open(out, nonce, ciphertext, additionalData []byte) bool {
	ct := ciphertext[:len(ciphertext)-Overhead]
	// The tag is checked before anything is written: the first group's key
	// stream gives the MAC key, and the first 448 bytes are then XORed from it.
	var st [16]uint32
	var ks [1024]byte
	a.state(&st, nonce)
	blocks8(&st, (*[512]byte)(ks[:512]), nil, nil, 0, 0)
	var polyKey [32]byte
	copy(polyKey[:], ks[:32])
	var want [16]byte
	tag(want[:], &polyKey, additionalData, ct)
	if subtle.ConstantTimeCompare(want[:], ciphertext[len(ct):]) != 1 {
		return false
	}
	n := subtle.XORBytes(out, ct, ks[64:512])
	if n < len(ct) {
		st[12] = 8
		xor(&st, &ks, out[n:], ct[n:], 0, nil)
	}
	return true
}

// sliceForAppend extends in by n bytes: head is the whole, tail the new part.
func sliceForAppend(in []byte, n int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	tail = head[len(in):]
	return
}

// inexactOverlap reports whether x and y share memory at different
// offsets (the same start is in-place use, which is allowed).
func inexactOverlap(x, y []byte) bool {
	if len(x) == 0 || len(y) == 0 || &x[0] == &y[0] {
		return false
	}
	xs := uintptr(unsafe.Pointer(&x[0]))
	ys := uintptr(unsafe.Pointer(&y[0]))
	return xs < ys+uintptr(len(y)) && ys < xs+uintptr(len(x))
}
