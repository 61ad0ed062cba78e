package chachapoly

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// needFast skips a test of the assembly where the processor lacks what it
// needs: there New returns x/crypto's implementation, which
// TestNewWithoutAVX512 and TestSealOpen check.
func needFast(t testing.TB) {
	if !fast {
		t.Skip("this processor lacks AVX512-VL or AVX512-IFMA: the assembly cannot run here")
	}
}

// TestNewWithoutAVX512: New returns this package's implementation exactly
// where the assembly can run, and refuses a bad key either way.
func TestNewWithoutAVX512(t *testing.T) {
	a, err := New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	_, ours := a.(*aead)
	if ours != fast {
		t.Fatalf("New returned this package's implementation: %v, with the assembly usable: %v", ours, fast)
	}
	if _, err := New(make([]byte, 31)); err == nil {
		t.Fatal("New took a 31-byte key")
	}
	if want := map[bool]string{true: "AVX-512", false: "x/crypto"}[fast]; Implementation() != want {
		t.Errorf("Implementation() = %q with the assembly usable: %v", Implementation(), fast)
	}
}

// check seals and opens pt with both implementations and compares.
func check(t *testing.T, rng *rand.Rand, a *aead, ref interface {
	Seal(dst, nonce, plaintext, ad []byte) []byte
}, nonce, pt, ad []byte) {
	t.Helper()
	n := len(pt)
	want := ref.Seal(nil, nonce, pt, ad)
	got := make([]byte, n+Overhead)
	a.seal(got, nonce, pt, ad)
	if !bytes.Equal(got, want) {
		t.Fatalf("seal of %d bytes (ad %d): got %x\nwant %x", n, len(ad), got, want)
	}
	// In place, as wireguard-go does it.
	buf := make([]byte, n+Overhead)
	copy(buf, pt)
	a.seal(buf, nonce, buf[:n], ad)
	if !bytes.Equal(buf, want) {
		t.Fatalf("in-place seal of %d bytes differs", n)
	}
	if !a.open(buf[:n], nonce, buf, ad) || !bytes.Equal(buf[:n], pt) {
		t.Fatalf("in-place open of %d bytes failed or differs", n)
	}
	// Every kind of damage is refused, and nothing is written: a bit of the
	// ciphertext or the tag, the additional data, the nonce.
	out := bytes.Repeat([]byte{0x5a}, n)
	bad := append([]byte(nil), want...)
	bad[rng.IntN(len(bad))] ^= 1 << rng.IntN(8)
	if a.open(out, nonce, bad, ad) {
		t.Fatalf("open of %d bytes took a damaged message", n)
	}
	if len(ad) > 0 {
		ad2 := append([]byte(nil), ad...)
		ad2[rng.IntN(len(ad2))] ^= 1
		if a.open(out, nonce, want, ad2) {
			t.Fatalf("open of %d bytes took damaged additional data", n)
		}
	}
	nonce2 := append([]byte(nil), nonce...)
	nonce2[rng.IntN(12)] ^= 1
	if a.open(out, nonce2, want, ad) {
		t.Fatalf("open of %d bytes took another nonce", n)
	}
	if !bytes.Equal(out, bytes.Repeat([]byte{0x5a}, n)) {
		t.Fatalf("a refused open of %d bytes wrote to its output", n)
	}
}

// TestEveryLength runs this package's own path (below minLen too, which
// Seal and Open hand to x/crypto) for every length up to 2100 bytes, with
// and without additional data, against x/crypto byte for byte.
func TestEveryLength(t *testing.T) {
	needFast(t)
	rng := rand.New(rand.NewPCG(1, 2))
	key := make([]byte, 32)
	nonce := make([]byte, 12)
	for round := 0; round < 3; round++ {
		for i := range key {
			key[i] = byte(rng.Uint32())
		}
		a, err := New(key)
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := chacha20poly1305.New(key)
		for n := 0; n <= 2100; n++ {
			for i := range nonce {
				nonce[i] = byte(rng.Uint32())
			}
			pt := make([]byte, n)
			for i := range pt {
				pt[i] = byte(rng.Uint32())
			}
			var ad []byte
			if n%3 != 0 {
				ad = make([]byte, rng.IntN(70))
				for i := range ad {
					ad[i] = byte(rng.Uint32())
				}
			}
			check(t, rng, a.(*aead), ref, nonce, pt, ad)
		}
	}
}

// TestSealOpen goes through the cipher.AEAD methods, on both sides of
// minLen: appending to dst, in place, and refusing a damaged message.
func TestSealOpen(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	a, _ := New(key)
	ref, _ := chacha20poly1305.New(key)
	nonce := make([]byte, 12)
	for _, n := range []int{0, 1, 100, minLen - 1, minLen, minLen + 1, 1420, 9000} {
		pt := bytes.Repeat([]byte{byte(n)}, n)
		prefix := []byte("head")
		got := a.Seal(prefix, nonce, pt, []byte("ad"))
		want := ref.Seal(prefix, nonce, pt, []byte("ad"))
		if !bytes.Equal(got, want) {
			t.Fatalf("Seal of %d bytes differs", n)
		}
		back, err := a.Open(nil, nonce, got[4:], []byte("ad"))
		if err != nil || !bytes.Equal(back, pt) {
			t.Fatalf("Open of %d bytes: %v", n, err)
		}
		got[len(got)-1] ^= 1
		if _, err := a.Open(nil, nonce, got[4:], []byte("ad")); err == nil {
			t.Fatalf("Open of %d bytes took a damaged tag", n)
		}
	}
	if _, err := a.Open(nil, nonce, make([]byte, 15), nil); err == nil {
		t.Fatal("Open took 15 bytes, shorter than a tag")
	}
}

// TestPolyExtremes runs the MAC alone over messages and keys whose limbs
// are as large as they get (every byte 0xff, r at its clamped maximum), and
// over zeros, against x/crypto's Poly1305: carries the random messages of
// TestEveryLength would rarely reach. With skip > 0 the first blocks go
// through the scalar code, so that the vector code starts from a large h
// (as after additional data).
func TestPolyExtremes(t *testing.T) {
	needFast(t)
	keys := [][32]byte{{}, {}, {}}
	for i := range keys[0] {
		keys[0][i] = 0xff
	}
	for i := 0; i < 16; i++ {
		keys[1][i] = 0xff
	}
	keys[2][0] = 1 // r = 1: the tag is the message sum
	for _, fill := range []byte{0xff, 0x00, 0xfe} {
		for ki, key := range keys {
			for _, skip := range []int{0, 16, 48} {
				for n := skip; n <= 5000; n += 16 {
					msg := bytes.Repeat([]byte{fill}, n)
					var want [16]byte
					refPoly(&want, msg, &key)
					var p poly
					p.init(&key)
					p.blocks(msg[:skip])
					rest := msg[skip:]
					if len(rest) >= 256 {
						k := len(rest) &^ 127
						p.groups(rest[:k])
						p.blocks(rest[k:])
					} else {
						p.blocks(rest)
					}
					var got [16]byte
					p.sum(got[:])
					if got != want {
						t.Fatalf("fill %#x key %d, %d bytes (%d first): tag %x, want %x", fill, ki, n, skip, got, want)
					}
				}
			}
		}
	}
}

// FuzzOpen: whatever arrives from the network, this package's own path
// and x/crypto's agree on whether it opens and on what it opens to; and
// both seal the fuzzed text alike, and that opens back to it.
func FuzzOpen(f *testing.F) {
	f.Add(make([]byte, 32), make([]byte, 12), make([]byte, 1436), []byte(nil))
	f.Add(bytes.Repeat([]byte{0xff}, 32), make([]byte, 12), bytes.Repeat([]byte{0xff}, 700), []byte("ad"))
	f.Fuzz(func(t *testing.T, key, nonce, msg, ad []byte) {
		needFast(t)
		if len(key) != 32 || len(nonce) != 12 {
			return
		}
		a, _ := New(key)
		ours := a.(*aead)
		ref, _ := chacha20poly1305.New(key)
		if len(msg) >= Overhead {
			want, werr := ref.Open(nil, nonce, msg, ad)
			got := make([]byte, len(msg)-Overhead)
			ok := ours.open(got, nonce, msg, ad)
			if ok != (werr == nil) || ok && !bytes.Equal(got, want) {
				t.Fatalf("open of %d bytes: ours %v, x/crypto %v", len(msg), ok, werr)
			}
		}
		sealed := make([]byte, len(msg)+Overhead)
		ours.seal(sealed, nonce, msg, ad)
		if !bytes.Equal(sealed, ref.Seal(nil, nonce, msg, ad)) {
			t.Fatalf("seal of %d bytes differs", len(msg))
		}
		back := make([]byte, len(msg))
		if !ours.open(back, nonce, sealed, ad) || !bytes.Equal(back, msg) {
			t.Fatalf("what was sealed of %d bytes does not open back to it", len(msg))
		}
	})
}
