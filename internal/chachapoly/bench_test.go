package chachapoly

import (
	"crypto/cipher"
	"strconv"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// BenchmarkBlocks times the key stream alone: 8 blocks in 256-bit
// registers, 16 in 512-bit ones.
func BenchmarkBlocks(b *testing.B) {
	needFast(b)
	var st [16]uint32
	var ks [1024]byte
	b.Run("8", func(b *testing.B) {
		b.SetBytes(512)
		for i := 0; i < b.N; i++ {
			blocks8(&st, (*[512]byte)(ks[:512]), nil, nil, 0, 0)
		}
	})
	b.Run("16", func(b *testing.B) {
		b.SetBytes(1024)
		for i := 0; i < b.N; i++ {
			blocks16(&st, &ks, nil, nil, 0, 0)
		}
	})
}

// benchSeal seals n bytes in place, as wireguard-go's encryption workers do.
func benchSeal(b *testing.B, a cipher.AEAD, n int) {
	buf := make([]byte, n+16)
	nonce := make([]byte, 12)
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		a.Seal(buf[:0], nonce, buf[:n], nil)
	}
}

func benchOpen(b *testing.B, a cipher.AEAD, n int) {
	nonce := make([]byte, 12)
	ct := a.Seal(nil, nonce, make([]byte, n), nil)
	buf := make([]byte, len(ct))
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		copy(buf, ct)
		if _, err := a.Open(buf[:0], nonce, buf, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// The plain implementation (x/crypto) and this package's, in the same run,
// at the tunnel's full-size packet (1420 bytes padded to 1424) and at a
// small one.
func BenchmarkSeal(b *testing.B) {
	key := make([]byte, 32)
	ref, _ := chacha20poly1305.New(key)
	ours, _ := New(key)
	for _, n := range []int{64, 512, 1424} {
		b.Run("xcrypto/"+strconv.Itoa(n), func(b *testing.B) { benchSeal(b, ref, n) })
		b.Run("chachapoly/"+strconv.Itoa(n), func(b *testing.B) { benchSeal(b, ours, n) })
	}
}

func BenchmarkOpen(b *testing.B) {
	key := make([]byte, 32)
	ref, _ := chacha20poly1305.New(key)
	ours, _ := New(key)
	for _, n := range []int{64, 512, 1424} {
		b.Run("xcrypto/"+strconv.Itoa(n), func(b *testing.B) { benchOpen(b, ref, n) })
		b.Run("chachapoly/"+strconv.Itoa(n), func(b *testing.B) { benchOpen(b, ours, n) })
	}
}
