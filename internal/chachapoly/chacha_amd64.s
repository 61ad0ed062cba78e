//go:build amd64 && !purego

#include "textflag.h"

// Eight ChaCha20 blocks side by side with AVX-512VL on 256-bit registers:
// register Yw holds word w of the eight blocks, one block per 32-bit lane,
// so a quarter round is twelve instructions for all eight blocks and each
// rotation is one VPROLD.

DATA iota16<>+0(SB)/4, $0
DATA iota16<>+4(SB)/4, $1
DATA iota16<>+8(SB)/4, $2
DATA iota16<>+12(SB)/4, $3
DATA iota16<>+16(SB)/4, $4
DATA iota16<>+20(SB)/4, $5
DATA iota16<>+24(SB)/4, $6
DATA iota16<>+28(SB)/4, $7
DATA iota16<>+32(SB)/4, $8
DATA iota16<>+36(SB)/4, $9
DATA iota16<>+40(SB)/4, $10
DATA iota16<>+44(SB)/4, $11
DATA iota16<>+48(SB)/4, $12
DATA iota16<>+52(SB)/4, $13
DATA iota16<>+56(SB)/4, $14
DATA iota16<>+60(SB)/4, $15
GLOBL iota16<>(SB), RODATA|NOPTR, $64

#define QUARTER4(a0, b0, c0, d0, a1, b1, c1, d1, a2, b2, c2, d2, a3, b3, c3, d3) \
	VPADDD b0, a0, a0; VPADDD b1, a1, a1; VPADDD b2, a2, a2; VPADDD b3, a3, a3; \
	VPXORD a0, d0, d0; VPXORD a1, d1, d1; VPXORD a2, d2, d2; VPXORD a3, d3, d3; \
	VPROLD $16, d0, d0; VPROLD $16, d1, d1; VPROLD $16, d2, d2; VPROLD $16, d3, d3; \
	VPADDD d0, c0, c0; VPADDD d1, c1, c1; VPADDD d2, c2, c2; VPADDD d3, c3, c3; \
	VPXORD c0, b0, b0; VPXORD c1, b1, b1; VPXORD c2, b2, b2; VPXORD c3, b3, b3; \
	VPROLD $12, b0, b0; VPROLD $12, b1, b1; VPROLD $12, b2, b2; VPROLD $12, b3, b3; \
	VPADDD b0, a0, a0; VPADDD b1, a1, a1; VPADDD b2, a2, a2; VPADDD b3, a3, a3; \
	VPXORD a0, d0, d0; VPXORD a1, d1, d1; VPXORD a2, d2, d2; VPXORD a3, d3, d3; \
	VPROLD $8, d0, d0; VPROLD $8, d1, d1; VPROLD $8, d2, d2; VPROLD $8, d3, d3; \
	VPADDD d0, c0, c0; VPADDD d1, c1, c1; VPADDD d2, c2, c2; VPADDD d3, c3, c3; \
	VPXORD c0, b0, b0; VPXORD c1, b1, b1; VPXORD c2, b2, b2; VPXORD c3, b3, b3; \
	VPROLD $7, b0, b0; VPROLD $7, b1, b1; VPROLD $7, b2, b2; VPROLD $7, b3, b3

// Transposes four words of eight blocks (lanes) into four words per block
// and stores them at off(BX) + 64*block, 16 bytes each.
// w0..w3 hold the words; t0..t3 are scratch.
#define STORE4(w0, w1, w2, w3, t0, t1, t2, t3, off) \
	VPUNPCKLDQ w1, w0, t0; VPUNPCKHDQ w1, w0, t1; \
	VPUNPCKLDQ w3, w2, t2; VPUNPCKHDQ w3, w2, t3; \
	VPUNPCKLQDQ t2, t0, w0; VPUNPCKHQDQ t2, t0, w1; \
	VPUNPCKLQDQ t3, t1, w2; VPUNPCKHQDQ t3, t1, w3; \
	VEXTRACTI32X4 $0, w0, off+0(BX); VEXTRACTI32X4 $1, w0, off+256(BX); \
	VEXTRACTI32X4 $0, w1, off+64(BX); VEXTRACTI32X4 $1, w1, off+320(BX); \
	VEXTRACTI32X4 $0, w2, off+128(BX); VEXTRACTI32X4 $1, w2, off+384(BX); \
	VEXTRACTI32X4 $0, w3, off+192(BX); VEXTRACTI32X4 $1, w3, off+448(BX)

// XORs n bytes (a multiple of 32) of src with the key stream at ks+off
// into dst, the arguments of blocks8 and blocks16; then returns.
#define XORRET \
	MOVQ dst+16(FP), DI; \
	MOVQ src+24(FP), SI; \
	MOVQ n+32(FP), CX; \
	MOVQ off+40(FP), DX; \
	ADDQ BX, DX; \
xor64: \
	CMPQ CX, $64; \
	JB   xor32; \
	VMOVDQU 0(SI), Y0; \
	VMOVDQU 32(SI), Y1; \
	VPXOR   0(DX), Y0, Y0; \
	VPXOR   32(DX), Y1, Y1; \
	VMOVDQU Y0, 0(DI); \
	VMOVDQU Y1, 32(DI); \
	ADDQ    $64, SI; \
	ADDQ    $64, DX; \
	ADDQ    $64, DI; \
	SUBQ    $64, CX; \
	JMP     xor64; \
xor32: \
	CMPQ CX, $32; \
	JB   done; \
	VMOVDQU 0(SI), Y0; \
	VPXOR   0(DX), Y0, Y0; \
	VMOVDQU Y0, 0(DI); \
done: \
	VZEROUPPER; \
	RET

// func blocks8(st *[16]uint32, ks *[512]byte, dst, src *byte, n, off int)
//
// Writes the eight blocks from st's counter on to ks, then XORs n bytes
// (a multiple of 32, at most 512-off) of src with ks[off:] into dst.
TEXT ·blocks8(SB), NOSPLIT, $0-48
	MOVQ st+0(FP), AX
	MOVQ ks+8(FP), BX

	VPBROADCASTD 0(AX), Y16
	VPBROADCASTD 4(AX), Y17
	VPBROADCASTD 8(AX), Y18
	VPBROADCASTD 12(AX), Y19
	VPBROADCASTD 16(AX), Y20
	VPBROADCASTD 20(AX), Y21
	VPBROADCASTD 24(AX), Y22
	VPBROADCASTD 28(AX), Y23
	VPBROADCASTD 32(AX), Y24
	VPBROADCASTD 36(AX), Y25
	VPBROADCASTD 40(AX), Y26
	VPBROADCASTD 44(AX), Y27
	VPBROADCASTD 48(AX), Y28
	VPBROADCASTD 52(AX), Y29
	VPBROADCASTD 56(AX), Y30
	VPBROADCASTD 60(AX), Y31
	VPADDD iota16<>(SB), Y28, Y28 // the first eight of 0..15

	VMOVDQA32 Y16, Y0
	VMOVDQA32 Y17, Y1
	VMOVDQA32 Y18, Y2
	VMOVDQA32 Y19, Y3
	VMOVDQA32 Y20, Y4
	VMOVDQA32 Y21, Y5
	VMOVDQA32 Y22, Y6
	VMOVDQA32 Y23, Y7
	VMOVDQA32 Y24, Y8
	VMOVDQA32 Y25, Y9
	VMOVDQA32 Y26, Y10
	VMOVDQA32 Y27, Y11
	VMOVDQA32 Y28, Y12
	VMOVDQA32 Y29, Y13
	VMOVDQA32 Y30, Y14
	VMOVDQA32 Y31, Y15

	MOVQ $10, CX

rounds:
	QUARTER4(Y0, Y4, Y8, Y12, Y1, Y5, Y9, Y13, Y2, Y6, Y10, Y14, Y3, Y7, Y11, Y15)
	QUARTER4(Y0, Y5, Y10, Y15, Y1, Y6, Y11, Y12, Y2, Y7, Y8, Y13, Y3, Y4, Y9, Y14)
	DECQ CX
	JNZ  rounds

	VPADDD Y16, Y0, Y0
	VPADDD Y17, Y1, Y1
	VPADDD Y18, Y2, Y2
	VPADDD Y19, Y3, Y3
	VPADDD Y20, Y4, Y4
	VPADDD Y21, Y5, Y5
	VPADDD Y22, Y6, Y6
	VPADDD Y23, Y7, Y7
	VPADDD Y24, Y8, Y8
	VPADDD Y25, Y9, Y9
	VPADDD Y26, Y10, Y10
	VPADDD Y27, Y11, Y11
	VPADDD Y28, Y12, Y12
	VPADDD Y29, Y13, Y13
	VPADDD Y30, Y14, Y14
	VPADDD Y31, Y15, Y15

	STORE4(Y0, Y1, Y2, Y3, Y16, Y17, Y18, Y19, 0)
	STORE4(Y4, Y5, Y6, Y7, Y20, Y21, Y22, Y23, 16)
	STORE4(Y8, Y9, Y10, Y11, Y24, Y25, Y26, Y27, 32)
	STORE4(Y12, Y13, Y14, Y15, Y28, Y29, Y30, Y31, 48)

	XORRET

// Like STORE4 for sixteen blocks in 512-bit registers: after the
// transposition each register holds four words of blocks b, b+4, b+8, b+12.
#define STORE16(w0, w1, w2, w3, t0, t1, t2, t3, off) \
	VPUNPCKLDQ w1, w0, t0; VPUNPCKHDQ w1, w0, t1; \
	VPUNPCKLDQ w3, w2, t2; VPUNPCKHDQ w3, w2, t3; \
	VPUNPCKLQDQ t2, t0, w0; VPUNPCKHQDQ t2, t0, w1; \
	VPUNPCKLQDQ t3, t1, w2; VPUNPCKHQDQ t3, t1, w3; \
	VEXTRACTI32X4 $0, w0, off+0(BX); VEXTRACTI32X4 $1, w0, off+256(BX); \
	VEXTRACTI32X4 $2, w0, off+512(BX); VEXTRACTI32X4 $3, w0, off+768(BX); \
	VEXTRACTI32X4 $0, w1, off+64(BX); VEXTRACTI32X4 $1, w1, off+320(BX); \
	VEXTRACTI32X4 $2, w1, off+576(BX); VEXTRACTI32X4 $3, w1, off+832(BX); \
	VEXTRACTI32X4 $0, w2, off+128(BX); VEXTRACTI32X4 $1, w2, off+384(BX); \
	VEXTRACTI32X4 $2, w2, off+640(BX); VEXTRACTI32X4 $3, w2, off+896(BX); \
	VEXTRACTI32X4 $0, w3, off+192(BX); VEXTRACTI32X4 $1, w3, off+448(BX); \
	VEXTRACTI32X4 $2, w3, off+704(BX); VEXTRACTI32X4 $3, w3, off+960(BX)

// func blocks16(st *[16]uint32, ks *[1024]byte, dst, src *byte, n, off int)
//
// blocks8 for sixteen blocks, in 512-bit registers; n is at most 1024-off.
TEXT ·blocks16(SB), NOSPLIT, $0-48
	MOVQ st+0(FP), AX
	MOVQ ks+8(FP), BX

	VPBROADCASTD 0(AX), Z16
	VPBROADCASTD 4(AX), Z17
	VPBROADCASTD 8(AX), Z18
	VPBROADCASTD 12(AX), Z19
	VPBROADCASTD 16(AX), Z20
	VPBROADCASTD 20(AX), Z21
	VPBROADCASTD 24(AX), Z22
	VPBROADCASTD 28(AX), Z23
	VPBROADCASTD 32(AX), Z24
	VPBROADCASTD 36(AX), Z25
	VPBROADCASTD 40(AX), Z26
	VPBROADCASTD 44(AX), Z27
	VPBROADCASTD 48(AX), Z28
	VPBROADCASTD 52(AX), Z29
	VPBROADCASTD 56(AX), Z30
	VPBROADCASTD 60(AX), Z31
	VPADDD iota16<>(SB), Z28, Z28

	VMOVDQA32 Z16, Z0
	VMOVDQA32 Z17, Z1
	VMOVDQA32 Z18, Z2
	VMOVDQA32 Z19, Z3
	VMOVDQA32 Z20, Z4
	VMOVDQA32 Z21, Z5
	VMOVDQA32 Z22, Z6
	VMOVDQA32 Z23, Z7
	VMOVDQA32 Z24, Z8
	VMOVDQA32 Z25, Z9
	VMOVDQA32 Z26, Z10
	VMOVDQA32 Z27, Z11
	VMOVDQA32 Z28, Z12
	VMOVDQA32 Z29, Z13
	VMOVDQA32 Z30, Z14
	VMOVDQA32 Z31, Z15

	MOVQ $10, CX

rounds16:
	QUARTER4(Z0, Z4, Z8, Z12, Z1, Z5, Z9, Z13, Z2, Z6, Z10, Z14, Z3, Z7, Z11, Z15)
	QUARTER4(Z0, Z5, Z10, Z15, Z1, Z6, Z11, Z12, Z2, Z7, Z8, Z13, Z3, Z4, Z9, Z14)
	DECQ CX
	JNZ  rounds16

	VPADDD Z16, Z0, Z0
	VPADDD Z17, Z1, Z1
	VPADDD Z18, Z2, Z2
	VPADDD Z19, Z3, Z3
	VPADDD Z20, Z4, Z4
	VPADDD Z21, Z5, Z5
	VPADDD Z22, Z6, Z6
	VPADDD Z23, Z7, Z7
	VPADDD Z24, Z8, Z8
	VPADDD Z25, Z9, Z9
	VPADDD Z26, Z10, Z10
	VPADDD Z27, Z11, Z11
	VPADDD Z28, Z12, Z12
	VPADDD Z29, Z13, Z13
	VPADDD Z30, Z14, Z14
	VPADDD Z31, Z15, Z15

	STORE16(Z0, Z1, Z2, Z3, Z16, Z17, Z18, Z19, 0)
	STORE16(Z4, Z5, Z6, Z7, Z20, Z21, Z22, Z23, 16)
	STORE16(Z8, Z9, Z10, Z11, Z24, Z25, Z26, Z27, 32)
	STORE16(Z12, Z13, Z14, Z15, Z28, Z29, Z30, Z31, 48)

	XORRET
