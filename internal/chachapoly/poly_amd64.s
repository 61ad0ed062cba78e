//go:build amd64 && !purego

#include "textflag.h"

// Poly1305 over groups of eight 16-byte blocks with AVX512-IFMA. A value
// mod 2^130-5 is three limbs of 44, 44 and 42 bits, each limb of the eight
// lanes in one 512-bit register. Lane k holds the blocks of one position in
// every group (positions 0, 4, 1, 5, 2, 6, 3, 7) and is multiplied by r^8
// per group; at the end each lane is multiplied by the power of r its
// position needs, and the caller adds the lanes.

DATA mask44<>+0(SB)/8, $0xfffffffffff
GLOBL mask44<>(SB), RODATA|NOPTR, $8
DATA mask42<>+0(SB)/8, $0x3ffffffffff
GLOBL mask42<>(SB), RODATA|NOPTR, $8
DATA hibit<>+0(SB)/8, $0x10000000000
GLOBL hibit<>(SB), RODATA|NOPTR, $8

// Splits the eight blocks at (SI) into limbs m0, m1, m2, adding 2^128 to
// each. ta is scratch. Z29: mask44, Z31: hibit.
#define LOADM(m0, m1, m2, ta) \
	VMOVDQU64 0(SI), ta; \
	VMOVDQU64 64(SI), m2; \
	VPUNPCKLQDQ m2, ta, m0; \
	VPUNPCKHQDQ m2, ta, m2; \
	VPSRLQ $44, m0, m1; \
	VPSLLQ $20, m2, ta; \
	VPTERNLOGQ $0xa8, Z29, ta, m1; \
	VPANDQ Z29, m0, m0; \
	VPSRLQ $24, m2, m2; \
	VPORQ Z31, m2, m2

// l0..l2 += low 52 bits of x*r, h0..h2 += high bits, for the product of
// x (x0, x1, x2) and r (r0, r1, r2; s1 = 20*r1, s2 = 20*r2).
#define MULACC(x0, x1, x2, r0, r1, r2, s1, s2, l0, l1, l2, h0, h1, h2) \
	VPMADD52LUQ r0, x0, l0; VPMADD52HUQ r0, x0, h0; \
	VPMADD52LUQ r1, x0, l1; VPMADD52HUQ r1, x0, h1; \
	VPMADD52LUQ r2, x0, l2; VPMADD52HUQ r2, x0, h2; \
	VPMADD52LUQ s2, x1, l0; VPMADD52HUQ s2, x1, h0; \
	VPMADD52LUQ r0, x1, l1; VPMADD52HUQ r0, x1, h1; \
	VPMADD52LUQ r1, x1, l2; VPMADD52HUQ r1, x1, h2; \
	VPMADD52LUQ s1, x2, l0; VPMADD52HUQ s1, x2, h0; \
	VPMADD52LUQ s2, x2, l1; VPMADD52HUQ s2, x2, h1; \
	VPMADD52LUQ r0, x2, l2; VPMADD52HUQ r0, x2, h2

// x0..x2 = l + h*2^52, carried into 44/44/42-bit limbs; x0 may exceed 44
// bits by up to 15, which the next multiplication takes (its inputs may have
// 52). t, u are scratch. Z29: mask44, Z30: mask42.
#define CARRY(l0, l1, l2, h0, h1, h2, x0, x1, x2, t, u) \
	VPSLLQ $8, h0, h0; VPADDQ h0, l1, l1; \
	VPSLLQ $8, h1, h1; VPADDQ h1, l2, l2; \
	VPSLLQ $10, h2, t; VPSLLQ $12, h2, h2; VPADDQ t, l0, l0; VPADDQ h2, l0, l0; \
	VPSRLQ $44, l0, t; VPANDQ Z29, l0, x0; VPADDQ t, l1, l1; \
	VPSRLQ $44, l1, t; VPANDQ Z29, l1, x1; VPADDQ t, l2, l2; \
	VPSRLQ $42, l2, t; VPANDQ Z30, l2, x2; \
	VPSLLQ $2, t, u; VPADDQ u, t, t; VPADDQ t, x0, x0

// func polyGroups(acc *[24]uint64, pw *vecPowers, msg *byte, groups int)
TEXT ·polyGroups(SB), NOSPLIT, $0-32
	MOVQ acc+0(FP), AX
	MOVQ pw+8(FP), BX
	MOVQ msg+16(FP), SI
	MOVQ groups+24(FP), CX

	VPBROADCASTQ mask44<>(SB), Z29
	VPBROADCASTQ mask42<>(SB), Z30
	VPBROADCASTQ hibit<>(SB), Z31

	VMOVDQU64 0(AX), Z0
	VMOVDQU64 64(AX), Z1
	VMOVDQU64 128(AX), Z2

	// r^8 is lane 0's power: its five limbs broadcast.
	VPBROADCASTQ 0(BX), Z6
	VPBROADCASTQ 64(BX), Z7
	VPBROADCASTQ 128(BX), Z8
	VPBROADCASTQ 192(BX), Z9
	VPBROADCASTQ 256(BX), Z10

	// The first group is added; each next one after a multiplication by r^8.
	LOADM(Z11, Z12, Z13, Z28)
	VPADDQ Z11, Z0, Z0
	VPADDQ Z12, Z1, Z1
	VPADDQ Z13, Z2, Z2
	ADDQ $128, SI
	DECQ CX
	JZ   last

loop:
	LOADM(Z11, Z12, Z13, Z28)
	VPXORQ Z17, Z17, Z17
	VPXORQ Z18, Z18, Z18
	VPXORQ Z19, Z19, Z19
	MULACC(Z0, Z1, Z2, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z17, Z18, Z19)
	CARRY(Z11, Z12, Z13, Z17, Z18, Z19, Z0, Z1, Z2, Z23, Z24)
	ADDQ $128, SI
	DECQ CX
	JNZ  loop

last:
	// Each lane by its power (five vectors of eight).
	VPXORQ Z11, Z11, Z11
	VPXORQ Z12, Z12, Z12
	VPXORQ Z13, Z13, Z13
	VPXORQ Z17, Z17, Z17
	VPXORQ Z18, Z18, Z18
	VPXORQ Z19, Z19, Z19
	VMOVDQU64 0(BX), Z6
	VMOVDQU64 64(BX), Z7
	VMOVDQU64 128(BX), Z8
	VMOVDQU64 192(BX), Z9
	VMOVDQU64 256(BX), Z10
	MULACC(Z0, Z1, Z2, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z17, Z18, Z19)
	CARRY(Z11, Z12, Z13, Z17, Z18, Z19, Z0, Z1, Z2, Z23, Z24)
	VPSRLQ $44, Z0, Z23
	VPANDQ Z29, Z0, Z0
	VPADDQ Z23, Z1, Z1

	VMOVDQU64 Z0, 0(AX)
	VMOVDQU64 Z1, 64(AX)
	VMOVDQU64 Z2, 128(AX)
	VZEROUPPER
	RET
