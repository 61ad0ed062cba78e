package mssclamp

import (
	"bytes"
	"testing"
)

// BenchmarkClamp measures Clamp per kind of packet at MTU 1420. Cases that
// rewrite the packet restore it first; "copy only" is that restore alone.
func BenchmarkClamp(b *testing.B) {
	payload := bytes.Repeat([]byte{0x5a}, 1380)
	cases := []struct {
		name    string
		pkt     []byte
		restore bool
	}{
		{"non-TCP v4 UDP", with(testData4, func(p []byte) []byte { p[9] = 17; return p }), false},
		{"TCP data v4", testData4, false},
		{"TCP data v6", pkt6(protoTCP, nil, append(tcpHeader(flagACK, nil), payload[:1360]...)), false},
		{"SYN already low v4", pkt4(nil, tcpHeader(flagSYN, linuxOpts1380)), false},
		{"copy only", testSYN4, true},
		{"SYN v4", testSYN4, true},
		{"SYN v6", pkt6(protoTCP, nil, tcpHeader(flagSYN, linuxOpts)), true},
		{"SYN v6 behind hop-by-hop", pkt6(protoHopByHop, ext(protoTCP, 0), tcpHeader(flagSYN, linuxOpts)), true},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			buf := bytes.Clone(tc.pkt)
			want := Clamp(bytes.Clone(tc.pkt), 1420)
			copyOnly := tc.name == "copy only"
			b.ReportAllocs()
			b.SetBytes(int64(len(buf)))
			changed := false
			for b.Loop() {
				if tc.restore {
					copy(buf, tc.pkt)
				}
				if !copyOnly {
					changed = Clamp(buf, 1420)
				}
			}
			if !copyOnly && changed != want {
				b.Fatalf("Clamp = %v, want %v", changed, want)
			}
		})
	}
}

// BenchmarkDevice measures the wrapper over batches of 128 bulk-transfer
// packets (1420-byte TCP data) at offset 16, the inner device doing nothing.
func BenchmarkDevice(b *testing.B) {
	const offset = 16
	for _, dir := range []string{"Read", "Write"} {
		b.Run(dir+" batch 128", func(b *testing.B) {
			f := newFakeTUN(1420)
			f.record = false
			d := wrap(b, f, 0)
			bufs, sizes, _ := bulkBatch(offset, false)
			f.inPlace = append([]int(nil), sizes...)
			b.ReportAllocs()
			for b.Loop() {
				if dir == "Read" {
					d.Read(bufs, sizes, offset)
				} else {
					d.Write(bufs, offset)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(bufs)), "ns/pkt")
		})
	}
}

// BenchmarkClampSYNBatch restores 64 SYNs, then clamps them: ns/pkt minus
// that of "copy only" is the cost of a rewrite, without the store-to-load
// stalls of restoring and clamping the same bytes back to back.
func BenchmarkClampSYNBatch(b *testing.B) {
	for _, tc := range []struct {
		name  string
		pkt   []byte
		clamp bool
	}{
		{"copy only", testSYN4, false},
		{"SYN v4", testSYN4, true},
		{"SYN-ACK v6", testSYNACK6, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			bufs := make([][]byte, 64)
			for i := range bufs {
				bufs[i] = bytes.Clone(tc.pkt)
			}
			b.ReportAllocs()
			for b.Loop() {
				for _, p := range bufs {
					copy(p, tc.pkt)
				}
				if tc.clamp {
					for _, p := range bufs {
						if !Clamp(p, 1420) {
							b.Fatal("not clamped")
						}
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(bufs)), "ns/pkt")
		})
	}
}
