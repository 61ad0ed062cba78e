package selfbench

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"

	"github.com/fobgw/fobgw/internal/chachapoly"
)

// checksumOK recomputes both checksums of a generated packet from scratch.
func checksumOK(p []byte) (ip, tcp bool) {
	ip = fold(sum(0, p[:ipv4Len])) == 0xffff
	s := sum(0, p[12:20]) + 6 + uint32(len(p)-ipv4Len)
	tcp = fold(sum(s, p[ipv4Len:])) == 0xffff
	return ip, tcp
}

func TestPacketChecksums(t *testing.T) {
	p := template(3, 1, 2)
	if ip, tcp := checksumOK(p[:]); !ip || !tcp {
		t.Fatalf("template: IPv4 checksum ok %v, TCP checksum ok %v", ip, tcp)
	}
	// Across a wrap of the sequence number too.
	advance(p[:], 0xffff0000)
	if _, tcp := checksumOK(p[:]); !tcp {
		t.Fatal("TCP checksum wrong after a jump of the sequence number")
	}
	for i := range 100000 {
		advance(p[:], PayloadSize)
		if _, tcp := checksumOK(p[:]); !tcp {
			t.Fatalf("after %d segments (seq %#x): TCP checksum wrong", i+1, binary.BigEndian.Uint32(p[offSeq:]))
		}
	}
	if got := streamOf(p[:], 4); got != 3 {
		t.Errorf("streamOf = %d, want 3", got)
	}
	if got := streamOf(p[:], 3); got != -1 {
		t.Errorf("streamOf with 3 streams = %d, want -1", got)
	}
	if got := streamOf(p[:10], 4); got != -1 {
		t.Errorf("streamOf of a short packet = %d, want -1", got)
	}
}

// TestRun runs the benchmark briefly: four measurements of the right shape, every figure
// positive and consistent with the packets counted, and the JSON `fobgw bench -json` prints.
func TestRun(t *testing.T) {
	const secs = 0.3
	r, err := Run(context.Background(), Config{Seconds: secs})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		streams int
		dir     string
	}{{1, "up"}, {1, "down"}, {4, "up"}, {4, "down"}}
	if len(r.Runs) != len(want) {
		t.Fatalf("%d measurements, want %d: %+v", len(r.Runs), len(want), r.Runs)
	}
	for i, m := range r.Runs {
		if m.Streams != want[i].streams || m.Direction != want[i].dir {
			t.Errorf("measurement %d: %d streams %s, want %d %s", i, m.Streams, m.Direction, want[i].streams, want[i].dir)
		}
		if m.Packets <= 0 || m.Mbps <= 0 || m.CPUPerGbit <= 0 {
			t.Errorf("measurement %d: %d packets, %.1f Mbit/s, %.1f CPU ms per Gbit: want all positive", i, m.Packets, m.Mbps, m.CPUPerGbit)
		}
		// The rate is the packets' payload over at least the measurement's time.
		if most := float64(m.Packets) * PayloadSize * 8 / secs / 1e6; m.Mbps > most*1.0001 {
			t.Errorf("measurement %d: %.1f Mbit/s, more than %d packets carry in %g s (%.1f)", i, m.Mbps, m.Packets, secs, most)
		}
		// Two CPUs cannot spend less than nothing, nor more than all their time at 1 Mbit/s.
		if ms := m.CPUPerGbit; ms > float64(r.CPUs)*1e6 {
			t.Errorf("measurement %d: %.0f CPU ms per Gbit is more than %d CPUs have", i, ms, r.CPUs)
		}
	}
	if r.PeakRSSAfter1KiB <= 0 || r.PeakRSSKiB < r.PeakRSSAfter1KiB {
		t.Errorf("peak RSS %d KiB after 1 stream, %d at the end: want positive and not falling", r.PeakRSSAfter1KiB, r.PeakRSSKiB)
	}
	if r.Cipher != chachapoly.Implementation() {
		t.Errorf("result names the cipher %q, this process uses %q", r.Cipher, chachapoly.Implementation())
	}
	if len(r.Published) == 0 || r.Packet != PacketSize || r.Window != DefaultWindow {
		t.Errorf("result: %d published figures, packet %d, window %d", len(r.Published), r.Packet, r.Window)
	}

	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var shape map[string]any
	if err := json.Unmarshal(b, &shape); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"arch", "cpus", "emulated", "cipher", "seconds", "runs", "peak_rss_kib", "peak_rss_after_1_stream_kib", "published"} {
		if _, ok := shape[k]; !ok {
			t.Errorf("JSON has no %q: %s", k, b)
		}
	}
	runs, _ := shape["runs"].([]any)
	if len(runs) != 4 {
		t.Fatalf("JSON runs: %v", shape["runs"])
	}
	for _, k := range []string{"streams", "direction", "mbit_per_s", "cpu_ms_per_gbit", "packets", "lost"} {
		if _, ok := runs[0].(map[string]any)[k]; !ok {
			t.Errorf("JSON run has no %q: %s", k, b)
		}
	}
}

// TestWriteText: the text names the figures, the published ones with their sources, what
// compares, and under emulation that the figures are not a speed, first and last.
func TestWriteText(t *testing.T) {
	r := &Result{
		Arch: "arm64", CPUs: 4, Go: "go1.26", Cipher: "x/crypto", Seconds: 5, Window: DefaultWindow, Packet: PacketSize,
		Runs:             []Measurement{{Streams: 1, Direction: "up", Mbps: 312.4, CPUPerGbit: 2500, Packets: 1000}},
		PeakRSSAfter1KiB: 15 << 10, PeakRSSKiB: 20 << 10, Published: Published,
	}
	for _, emulated := range []bool{false, true} {
		r.Emulated = emulated
		var b bytes.Buffer
		if err := r.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		for _, s := range []string{"312", "2500", "15.0 MiB", "20.0 MiB", "19.2 Mbit/s", "35.2 Mbit/s", "QCA9533", "QCA9558", "cyyself/wg-bench", "Not comparable", "ChaCha20-Poly1305: x/crypto"} {
			if !strings.Contains(out, s) {
				t.Errorf("emulated %v: the text lacks %q:\n%s", emulated, s, out)
			}
		}
		if got := strings.Count(out, NotASpeed); (got == 2) != emulated || (got == 0) == emulated {
			t.Errorf("emulated %v: %q appears %d times:\n%s", emulated, NotASpeed, got, out)
		}
	}
}
