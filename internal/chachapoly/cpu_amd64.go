//go:build amd64 && !purego

package chachapoly

import "golang.org/x/sys/cpu"

// fast: AVX512-F and -VL for the ChaCha20 rounds, AVX512-IFMA for Poly1305,
// AVX2 for the XOR loops (every such processor has it; a virtual machine
// could hide it).
var fast = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512IFMA && cpu.X86.HasAVX2
