package chachapoly

import (
	"bytes"
	"encoding/binary"
	"testing"

	"golang.org/x/crypto/chacha20"
)

func TestBlocks8(t *testing.T) {
	needFast(t)
	key := make([]byte, 32)
	nonce := make([]byte, 12)
	for i := range key {
		key[i] = byte(i*7 + 1)
	}
	for i := range nonce {
		nonce[i] = byte(0xa0 + i)
	}
	for _, ctr := range []uint32{0, 1, 8, 0xfffffff0} {
		var st [16]uint32
		st[0], st[1], st[2], st[3] = 0x61707865, 0x3320646e, 0x79622d32, 0x6b206574
		for i := 0; i < 8; i++ {
			st[4+i] = binary.LittleEndian.Uint32(key[4*i:])
		}
		st[12] = ctr
		for i := 0; i < 3; i++ {
			st[13+i] = binary.LittleEndian.Uint32(nonce[4*i:])
		}
		var got [512]byte
		blocks8(&st, &got, nil, nil, 0, 0)
		c, _ := chacha20.NewUnauthenticatedCipher(key, nonce)
		c.SetCounter(ctr)
		want := make([]byte, 512)
		c.XORKeyStream(want, want)
		if !bytes.Equal(got[:], want) {
			t.Fatalf("counter %#x: keystream differs\n got %x\nwant %x", ctr, got, want)
		}
	}
}

func TestBlocks16(t *testing.T) {
	needFast(t)
	var st [16]uint32
	for i := range st {
		st[i] = uint32(i*0x01010101 + 7)
	}
	var wide [1024]byte
	blocks16(&st, &wide, nil, nil, 0, 0)
	var narrow [512]byte
	for g := 0; g < 2; g++ {
		s := st
		s[12] += uint32(8 * g)
		blocks8(&s, &narrow, nil, nil, 0, 0)
		if !bytes.Equal(wide[512*g:512*(g+1)], narrow[:]) {
			t.Fatalf("blocks %d-%d differ from blocks8's", 8*g, 8*g+7)
		}
	}
}
