package mssclamp

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

// The benchmarks time the real code against the plain one of plain_test.go
// in the same run, taking turns pass by pass, and report per packet the
// median pass of each and their ratio: every round (-count) carries its own
// comparison, and a pass that another process preempted is an outlier, not a
// cost. Run them with
//
//	go test -run XXX -bench . -count 10 ./mssclamp/

// benchPackets is the number of packets clamped in one timed pass: the clock
// is read twice per pass, and its ~20 ns vanish against a thousand packets.
// A pass that leaves the packets unchanged goes 8 times over a batch of 128
// (wireguard-go's batch size, whose headers stay in the caches as they do
// after a read from the TUN); a pass that rewrites goes once over 1024
// copies restored before the pass, untimed.
const (
	benchPackets = 1024
	benchBatch   = 128
)

// benchCases are the packets of BenchmarkClampVsPlain, at MTU 1420.
func benchCases() []struct {
	name string
	pkt  []byte
} {
	syn4 := func(flags byte, opts []byte) []byte { return pkt4(nil, tcpHeader(flags, opts)) }
	syn6 := func(flags byte, opts []byte) []byte { return pkt6(protoTCP, nil, tcpHeader(flags, opts)) }
	payload := bytes.Repeat([]byte{0x5a}, 1380)
	return []struct {
		name string
		pkt  []byte
	}{
		{"data v4", testData4},
		{"data v6", pkt6(protoTCP, nil, append(tcpHeader(flagACK, nil), payload[:1360]...))},
		{"non-TCP v4 UDP", with(testData4, func(p []byte) []byte { p[9] = 17; return p })},
		{"SYN Linux v4", syn4(flagSYN, linuxOpts)},
		{"SYN Windows v4", syn4(flagSYN, windowsOpts)},
		{"SYN macOS v4", syn4(flagSYN, macOpts)},
		{"SYN Linux v6", syn6(flagSYN, linuxOpts)},
		{"SYN-ACK Linux to Windows v4", syn4(flagSYNACK, linuxSYNACKNoTSOpts)},
		{"SYN-ACK Linux v6", syn6(flagSYNACK, linuxOpts)},
		{"SYN Linux v6 behind hop-by-hop", pkt6(protoHopByHop, ext(protoTCP, 0), tcpHeader(flagSYN, linuxOpts))},
		{"SYN odd MSS offset v4", syn4(flagSYN, oddOpts)},
		{"SYN already low v4", syn4(flagSYN, linuxOpts1380)},
	}
}

// linuxSYNACKNoTSOpts is the option list of Linux's SYN-ACK to a SYN without
// timestamps (a Windows client).
var linuxSYNACKNoTSOpts = []byte{
	0x02, 0x04, 0x05, 0xb4, // MSS 1460
	0x01, 0x01, // NOP NOP
	0x04, 0x02, // SACK permitted
	0x01,             // NOP
	0x03, 0x03, 0x07, // window scale 7
}

// BenchmarkClampVsPlain times Clamp ("real") against plainClamp ("plain") on
// the same packets.
func BenchmarkClampVsPlain(b *testing.B) {
	for _, tc := range benchCases() {
		b.Run(tc.name, func(b *testing.B) {
			rewrites := Clamp(bytes.Clone(tc.pkt), 1420)
			if plainClamp(bytes.Clone(tc.pkt), 1420) != rewrites {
				b.Fatalf("Clamp and plainClamp disagree")
			}
			want, distinct := 0, benchBatch
			if rewrites {
				want, distinct = benchPackets, benchPackets
			}
			copies := make([][]byte, distinct)
			for i := range copies {
				copies[i] = bytes.Clone(tc.pkt)
			}
			bufs := make([][]byte, benchPackets)
			for i := range bufs {
				bufs[i] = copies[i%distinct]
			}
			var restore func()
			if rewrites {
				restore = func() {
					for _, p := range bufs {
						copy(p, tc.pkt)
					}
				}
			}
			check := func(name string, n int) {
				if n != want {
					b.Fatalf("%s: %d of %d packets clamped, want %d", name, n, len(bufs), want)
				}
			}
			alternate(b, benchPackets, restore,
				func() { check("Clamp", clampAll(bufs)) },
				func() { check("plainClamp", plainClampAll(bufs)) })
		})
	}
}

func clampAll(bufs [][]byte) int {
	n := 0
	for _, p := range bufs {
		if Clamp(p, 1420) {
			n++
		}
	}
	return n
}

func plainClampAll(bufs [][]byte) int {
	n := 0
	for _, p := range bufs {
		if plainClamp(p, 1420) {
			n++
		}
	}
	return n
}

// BenchmarkDevice times the wrapper against plainDevice (plainClamp on every
// packet) over batches of 128 bulk-transfer packets (1420-byte TCP data) at
// offset 16, the inner device doing nothing: what the clamp adds to every
// packet of a download (Write) or an upload (Read).
func BenchmarkDevice(b *testing.B) {
	const offset = 16
	const calls = benchPackets / benchBatch // per timed pass
	for _, dir := range []string{"Read", "Write"} {
		b.Run(dir+" batch 128", func(b *testing.B) {
			f := newFakeTUN(1420)
			f.record = false
			real := wrap(b, f, 0)
			plain := plainDevice{f}
			bufs, sizes, _ := bulkBatch(offset, false)
			f.inPlace = append([]int(nil), sizes...)
			pass := func(d interface {
				Read([][]byte, []int, int) (int, error)
				Write([][]byte, int) (int, error)
			}) func() {
				if dir == "Read" {
					return func() {
						for range calls {
							d.Read(bufs, sizes, offset)
						}
					}
				}
				return func() {
					for range calls {
						d.Write(bufs, offset)
					}
				}
			}
			alternate(b, calls*len(bufs), nil, pass(real), pass(plain))
		})
	}
}

// plainDevice is Device as anyone would first write it: plainClamp on every
// packet, no counters.
type plainDevice struct{ *fakeTUN }

func (d plainDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := d.fakeTUN.Read(bufs, sizes, offset)
	for i := range n {
		plainClamp(bufs[i][offset:offset+sizes[i]], 1420)
	}
	return n, err
}

func (d plainDevice) Write(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		plainClamp(b[offset:], 1420)
	}
	return d.fakeTUN.Write(bufs, offset)
}

// alternate runs real and plain in turns until b.Loop ends, the first of
// each turn changing from one turn to the next, and timing each pass (a call
// of real or plain, which handle packets packets each) but not restore, run
// before each pass if not nil. It reports the median pass of each per packet
// (real-ns/pkt, plain-ns/pkt) and their ratio (real/plain).
func alternate(b *testing.B, packets int, restore func(), real, plain func()) {
	const maxPasses = 1 << 16
	passes := [2][]time.Duration{make([]time.Duration, 0, maxPasses), make([]time.Duration, 0, maxPasses)}
	fs := [2]func(){real, plain}
	b.ReportAllocs()
	for turn := 0; b.Loop(); turn++ {
		for k := range 2 {
			i := (turn + k) % 2
			if restore != nil {
				restore()
			}
			start := time.Now()
			fs[i]()
			if d := time.Since(start); len(passes[i]) < maxPasses {
				passes[i] = append(passes[i], d)
			}
		}
	}
	var perPkt [2]float64
	for i, p := range passes {
		slices.Sort(p)
		perPkt[i] = float64(p[len(p)/2].Nanoseconds()) / float64(packets)
	}
	b.ReportMetric(perPkt[0], "real-ns/pkt")
	b.ReportMetric(perPkt[1], "plain-ns/pkt")
	b.ReportMetric(perPkt[0]/perPkt[1], "real/plain")
}
