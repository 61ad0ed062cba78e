//go:build amd64 && !purego

package chachapoly

//go:noescape
func blocks8(st *[16]uint32, ks *[512]byte, dst, src *byte, n, off int)

//go:noescape
func polyGroups(acc *[24]uint64, pw *vecPowers, msg *byte, groups int)

//go:noescape
func blocks16(st *[16]uint32, ks *[1024]byte, dst, src *byte, n, off int)
