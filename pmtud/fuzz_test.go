package pmtud

import (
	"bytes"
	"testing"
)

// FuzzDevice: any packet either way passes without a panic; a packet the
// Device does not own passes unchanged, and a reply it takes is one of its
// own.
func FuzzDevice(f *testing.F) {
	d := Wrap(newFakeTUN(), 1420, 1280)
	req := trigger(d, 3, 1300)
	f.Add(req)
	f.Add(udp4(fobAddr, homeAddr, 9, make([]byte, markerLen)))
	st := staticTUN{newFakeTUN(), [][]byte{req}}
	d.inner = st
	bufs, sizes := [][]byte{make([]byte, 65535)}, []int{0}
	d.Read(bufs, sizes, 0)
	f.Add(echoReply(bufs[0][:sizes[0]]))
	f.Add([]byte{0x45})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		st.pkts[0] = pkt
		n, _ := d.Read(bufs, sizes, 0)
		got := bufs[0][:sizes[0]]
		if _, ours := parseTrigger(pkt, d.key); n != 1 || (!ours && !bytes.Equal(got, pkt)) {
			t.Fatalf("Read changed a foreign packet: % x -> % x", pkt, got)
		}
		var w countTUN
		d.inner = &w
		d.Write([][]byte{pkt}, 0)
		d.inner = st
		if _, ours := parseReply(pkt, d.key, d.icmpID); ours == (w.n == 1) {
			t.Fatalf("Write: ours %v, passed on %d", ours, w.n)
		}
		select {
		case <-d.replies:
		default:
		}
	})
}

type countTUN struct {
	staticTUN
	n int
}

func (c *countTUN) Write(bufs [][]byte, offset int) (int, error) {
	c.n += len(bufs)
	return len(bufs), nil
}

// BenchmarkDevice: the cost of the Device on ordinary packets, against the
// wrapped device alone, in the same run.
func BenchmarkDevice(b *testing.B) {
	const offset = 16
	var batch [][]byte
	for range 32 {
		batch = append(batch, ipv4(6, [4]byte{192, 168, 86, 254}, [4]byte{203, 0, 113, 80}, flagDF, make([]byte, 1380)))
	}
	inner := staticTUN{newFakeTUN(), batch}
	bufs, sizes := make([][]byte, 32), make([]int, 32)
	wbufs := make([][]byte, 32)
	for i := range bufs {
		bufs[i] = make([]byte, 65535)
		wbufs[i] = append(make([]byte, offset), batch[i]...)
	}
	for _, c := range []struct {
		name string
		dev  interface {
			Read([][]byte, []int, int) (int, error)
			Write([][]byte, int) (int, error)
		}
	}{{"plain", inner}, {"pmtud", Wrap(inner, 1420, 1280)}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.dev.Read(bufs, sizes, offset)
				c.dev.Write(wbufs, offset)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/64, "ns/packet")
		})
	}
}
