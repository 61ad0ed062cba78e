//go:build !amd64 || purego

package chachapoly

// fast is false: New returns x/crypto's implementation here.
const fast = false

func blocks8(st *[16]uint32, ks *[512]byte, dst, src *byte, n, off int) {
	panic("chachapoly: no assembly")
}

func polyGroups(acc *[24]uint64, pw *vecPowers, msg *byte, groups int) {
	panic("chachapoly: no assembly")
}

func blocks16(st *[16]uint32, ks *[1024]byte, dst, src *byte, n, off int) {
	panic("chachapoly: no assembly")
}
