package pmtud

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun"
)

// fakeTUN is a tun.Device: Read hands out queued packets at the offset (and
// blocks while there are none), Write records copies.
type fakeTUN struct {
	mu      sync.Mutex
	cond    *sync.Cond
	queue   [][]byte // protected by mu
	written [][]byte // protected by mu
	closed  bool     // protected by mu
	events  chan tun.Event
}

func newFakeTUN() *fakeTUN {
	f := &fakeTUN{events: make(chan tun.Event)}
	f.cond = sync.NewCond(&f.mu)
	return f
}

func (f *fakeTUN) push(pkts ...[]byte) {
	f.mu.Lock()
	f.queue = append(f.queue, pkts...)
	f.mu.Unlock()
	f.cond.Broadcast()
}

func (f *fakeTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.queue) == 0 && !f.closed {
		f.cond.Wait()
	}
	if f.closed {
		return 0, os.ErrClosed
	}
	n := 0
	for n < len(bufs) && len(f.queue) > 0 {
		sizes[n] = copy(bufs[n][offset:], f.queue[0])
		f.queue = f.queue[1:]
		n++
	}
	return n, nil
}

func (f *fakeTUN) Write(bufs [][]byte, offset int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range bufs {
		f.written = append(f.written, bytes.Clone(b[offset:]))
	}
	return len(bufs), nil
}

func (f *fakeTUN) takeWritten() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.written
	f.written = nil
	return w
}

func (f *fakeTUN) File() *os.File           { return nil }
func (f *fakeTUN) MTU() (int, error)        { return 1340, nil }
func (f *fakeTUN) Name() (string, error)    { return "faketun0", nil }
func (f *fakeTUN) Events() <-chan tun.Event { return f.events }
func (f *fakeTUN) BatchSize() int           { return 1 }
func (f *fakeTUN) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.cond.Broadcast()
	return nil
}

var (
	fobAddr  = [4]byte{10, 1, 200, 2}
	homeAddr = [4]byte{10, 1, 200, 1}
)

// ipv4 builds an IPv4 packet (no options, TTL 64, identification 0x1234)
// around payload, with a valid header checksum.
func ipv4(proto byte, src, dst [4]byte, flags uint16, payload []byte) []byte {
	p := make([]byte, 20+len(payload))
	p[0] = 0x45                                       // version 4, IHL 5
	binary.BigEndian.PutUint16(p[2:], uint16(len(p))) // total length
	binary.BigEndian.PutUint16(p[4:], 0x1234)         // identification
	binary.BigEndian.PutUint16(p[6:], flags)          // flags, fragment offset
	p[8] = 64                                         // TTL
	p[9] = proto
	copy(p[12:], src[:])
	copy(p[16:], dst[:])
	binary.BigEndian.PutUint16(p[10:], checksum(p[:20]))
	copy(p[20:], payload)
	return p
}

// udp4 is an IPv4 UDP datagram from src:40000 to dst:port (UDP checksum 0).
func udp4(src, dst [4]byte, port uint16, payload []byte) []byte {
	u := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(u[0:], 40000)
	binary.BigEndian.PutUint16(u[2:], port)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], payload)
	return ipv4(protoUDP, src, dst, 0, u)
}

// trigger is what the kernel sends for a Prober of d asking for size bytes.
func trigger(d *Device, seq uint32, size int) []byte {
	return udp4(fobAddr, homeAddr, triggerPort, triggerPayload(d.key, seq, size))
}

// echoReply answers an echo request as a Linux kernel does: addresses
// swapped, type 0, the rest echoed, checksums recomputed; DF is not set.
func echoReply(req []byte) []byte {
	icmp := bytes.Clone(req[20:])
	icmp[0] = icmpEchoReply
	icmp[2], icmp[3] = 0, 0
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
	return ipv4(protoICMP, [4]byte(req[16:20]), [4]byte(req[12:16]), 0, icmp)
}

// readOne reads one batch of one packet through d with wireguard-go's
// offset and a buffer of its size.
func readOne(t *testing.T, d *Device) []byte {
	t.Helper()
	const offset = 16
	bufs := [][]byte{make([]byte, 65535)}
	sizes := []int{0}
	n, err := d.Read(bufs, sizes, offset)
	if n != 1 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	return bufs[0][offset : offset+sizes[0]]
}

func TestTriggerBecomesEchoRequest(t *testing.T) {
	for _, size := range []int{MinProbe, 128, 1280, 1341, 1420, 9000} {
		f := newFakeTUN()
		d := Wrap(f, 1420, 1280)
		f.push(trigger(d, 7, size))
		p := readOne(t, d)
		if len(p) != size {
			t.Fatalf("size %d: read %d bytes", size, len(p))
		}
		if p[0] != 0x45 || int(binary.BigEndian.Uint16(p[2:])) != size || p[9] != protoICMP {
			t.Errorf("size %d: IPv4 header % x", size, p[:20])
		}
		if binary.BigEndian.Uint16(p[6:]) != flagDF {
			t.Errorf("size %d: flags/offset %#04x, want DF only", size, binary.BigEndian.Uint16(p[6:]))
		}
		if checksum(p[:20]) != 0 {
			t.Errorf("size %d: bad IPv4 header checksum", size)
		}
		if !bytes.Equal(p[12:16], fobAddr[:]) || !bytes.Equal(p[16:20], homeAddr[:]) {
			t.Errorf("size %d: addresses % x -> % x, want the trigger's", size, p[12:16], p[16:20])
		}
		if p[20] != icmpEchoRequest || p[21] != 0 || checksum(p[20:]) != 0 {
			t.Errorf("size %d: ICMP type %d code %d, checksum ok %v", size, p[20], p[21], checksum(p[20:]) == 0)
		}
		if binary.BigEndian.Uint16(p[24:]) != d.icmpID || binary.BigEndian.Uint16(p[26:]) != 7 {
			t.Errorf("size %d: ICMP id/seq % x", size, p[24:28])
		}
	}
}

func TestForeignPacketsPassUnchanged(t *testing.T) {
	f := newFakeTUN()
	d := Wrap(f, 1420, 1280)
	other := Wrap(newFakeTUN(), 1420, 1280) // another key
	foreign := map[string][]byte{
		"another Device's trigger": trigger(other, 1, 1400),
		"trigger size, not UDP":    ipv4(6, fobAddr, homeAddr, 0, make([]byte, triggerLen-20)),
		"trigger size, no magic":   udp4(fobAddr, homeAddr, 9, make([]byte, markerLen)),
		"a fragment":               ipv4(protoUDP, fobAddr, homeAddr, 0x2000, trigger(d, 1, 1400)[20:]),
		"asks for a tiny probe":    udp4(fobAddr, homeAddr, 9, triggerPayload(d.key, 1, 20)),
	}
	for name, pkt := range foreign {
		f.push(pkt)
		if got := readOne(t, d); !bytes.Equal(got, pkt) {
			t.Errorf("%s: changed to % x", name, got)
		}
	}
	// No room in the buffer: the trigger leaves as it is.
	pkt := trigger(d, 1, 2000)
	f.push(pkt)
	bufs, sizes := [][]byte{make([]byte, 1500)}, []int{0}
	if n, err := d.Read(bufs, sizes, 16); n != 1 || err != nil || !bytes.Equal(bufs[0][16:16+sizes[0]], pkt) {
		t.Errorf("no room: Read %d, %v, % x", n, err, bufs[0][16:16+sizes[0]])
	}
}

func TestRepliesAreTakenOut(t *testing.T) {
	f := newFakeTUN()
	d := Wrap(f, 1420, 1280)
	f.push(trigger(d, 9, 1400))
	req := bytes.Clone(readOne(t, d))
	reply := echoReply(req)
	lanA := udp4(homeAddr, [4]byte{192, 168, 86, 254}, 53, []byte("answer"))
	lanB := ipv4(protoICMP, homeAddr, fobAddr, 0, make([]byte, 1380))  // another ICMP packet
	fragment := ipv4(protoICMP, homeAddr, fobAddr, 0x2000, reply[20:]) // MF: not whole
	otherKey := echoReply(req)
	otherKey[28+8] ^= 1 // a key byte
	const offset = 16
	var bufs [][]byte
	for _, p := range [][]byte{lanA, reply, lanB, fragment, otherKey} {
		bufs = append(bufs, append(make([]byte, offset), p...))
	}
	orig := append([][]byte(nil), bufs...)
	n, err := d.Write(bufs, offset)
	if n != 5 || err != nil {
		t.Errorf("Write = %d, %v; want 5, nil", n, err)
	}
	w := f.takeWritten()
	if len(w) != 4 || !bytes.Equal(w[0], lanA) || !bytes.Equal(w[1], lanB) || !bytes.Equal(w[2], fragment) || !bytes.Equal(w[3], otherKey) {
		t.Errorf("wrapped device got %d packets, want the 4 that are not the reply", len(w))
	}
	for i := range bufs {
		if &bufs[i][0] != &orig[i][0] {
			t.Errorf("bufs[%d] was modified", i)
		}
	}
	select {
	case m := <-d.replies:
		if m.seq != 9 || m.size != 1400 {
			t.Errorf("reply seq %d size %d, want 9 and 1400", m.seq, m.size)
		}
	default:
		t.Fatal("no reply handed on")
	}
	// A batch of only a reply writes nothing.
	if n, err := d.Write([][]byte{append(make([]byte, offset), reply...)}, offset); n != 1 || err != nil || len(f.takeWritten()) != 0 {
		t.Errorf("Write(reply only) = %d, %v", n, err)
	}
}

func TestActive(t *testing.T) {
	f := newFakeTUN()
	d := Wrap(f, 1420, 1280)
	if d.Active() {
		t.Error("active before any packet")
	}
	f.push(make([]byte, 1280))
	readOne(t, d)
	if d.Active() {
		t.Error("a packet of the floor's size counted as active")
	}
	f.push(make([]byte, 1281))
	readOne(t, d)
	if !d.Active() || d.Active() {
		t.Error("Active after a large read: want true once, then false")
	}
	d.Write([][]byte{make([]byte, 16+1400)}, 16)
	if !d.Active() {
		t.Error("Active after a large write: want true")
	}
}

func TestDevicePassesThrough(t *testing.T) {
	f := newFakeTUN()
	d := Wrap(f, 1420, 1280)
	if m, err := d.MTU(); m != 1420 || err != nil {
		t.Errorf("MTU = %d, %v; want the ceiling 1420", m, err)
	}
	if n, _ := d.Name(); n != "faketun0" {
		t.Errorf("Name = %q", n)
	}
	if d.Events() != (<-chan tun.Event)(f.events) {
		t.Error("Events is not the wrapped device's")
	}
}

// The hot path: ordinary packets allocate nothing either way.
func TestNoAllocations(t *testing.T) {
	const offset = 16
	tcp := ipv4(6, [4]byte{192, 168, 86, 254}, [4]byte{203, 0, 113, 80}, flagDF, make([]byte, 1380))
	small := udp4([4]byte{192, 168, 86, 254}, [4]byte{192, 168, 88, 1}, 53, make([]byte, markerLen)) // trigger-sized
	icmp := ipv4(protoICMP, [4]byte{203, 0, 113, 80}, [4]byte{192, 168, 86, 254}, 0, make([]byte, 1380))
	d := Wrap(staticTUN{newFakeTUN(), [][]byte{tcp, small}}, 1420, 1280)
	bufs := [][]byte{make([]byte, 65535), make([]byte, 65535)}
	sizes := []int{0, 0}
	wbufs := [][]byte{append(make([]byte, offset), tcp...), append(make([]byte, offset), small...), append(make([]byte, offset), icmp...)}
	allocs := testing.AllocsPerRun(1000, func() {
		d.Read(bufs, sizes, offset)
		d.Write(wbufs, offset)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per Read+Write of ordinary packets, want 0", allocs)
	}
}

// staticTUN reads the same packets every time and writes nowhere.
type staticTUN struct {
	*fakeTUN
	pkts [][]byte
}

func (s staticTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	for i, p := range s.pkts {
		sizes[i] = copy(bufs[i][offset:], p)
	}
	return len(s.pkts), nil
}

func (staticTUN) Write(bufs [][]byte, offset int) (int, error) { return len(bufs), nil }

// wgLoop stands in for wireguard-go and the home router: it reads packets
// from d and answers echo requests that fit the path (at most path bytes) by
// writing the reply to d.
func wgLoop(d *Device, path func() int) {
	bufs, sizes := [][]byte{make([]byte, 65535)}, []int{0}
	for {
		n, err := d.Read(bufs, sizes, 16)
		if err != nil {
			return
		}
		for i := range n {
			p := bufs[i][16 : 16+sizes[i]]
			if len(p) > path() || p[9] != protoICMP || p[20] != icmpEchoRequest {
				continue
			}
			d.Write([][]byte{append(make([]byte, 16), echoReply(p)...)}, 16)
		}
	}
}

// triggerWriter is the kernel's part: a UDP socket whose datagrams enter the
// TUN.
type triggerWriter struct{ f *fakeTUN }

func (w triggerWriter) Write(payload []byte) (int, error) {
	w.f.push(udp4(fobAddr, homeAddr, triggerPort, payload))
	return len(payload), nil
}

func TestEchoProber(t *testing.T) {
	f := newFakeTUN()
	d := Wrap(f, 1420, 1280)
	defer d.Close()
	var mu sync.Mutex
	path := 1400
	go wgLoop(d, func() int { mu.Lock(); defer mu.Unlock(); return path })
	p := d.Prober(triggerWriter{f})
	ctx := context.Background()
	for _, tc := range []struct {
		size int
		want error
	}{{128, nil}, {1400, nil}, {1401, ErrLost}, {1420, ErrLost}, {1280, nil}} {
		if err := p.Probe(ctx, tc.size, time.Second); !errors.Is(err, tc.want) && err != tc.want {
			t.Errorf("Probe(%d) = %v, want %v", tc.size, err, tc.want)
		}
	}
	if err := p.Probe(ctx, 20, time.Second); err == nil || errors.Is(err, ErrLost) {
		t.Errorf("Probe(20) = %v, want a size error", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.Probe(cctx, 1420, time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("Probe with ended context = %v", err)
	}
	// The search over the real Device and Prober finds the path.
	mu.Lock()
	path = 1340
	mu.Unlock()
	s := NewSearcher(Config{Ceiling: 1420, Timeout: time.Second, MinTimeout: 300 * time.Millisecond}, p)
	s.full(ctx)
	if st := s.Status(); st.Effective != 1340 || st.State != StateOK {
		t.Errorf("search: %+v, want effective 1340", st)
	}
}

func TestDialTriggerWantsIPv4(t *testing.T) {
	c, err := DialTrigger("lo", netip.MustParseAddr("fd00::1"))
	if err == nil {
		c.Close()
		t.Fatal("DialTrigger to an IPv6 target: no error")
	}
	if !strings.Contains(err.Error(), "IPv4") {
		t.Errorf("error %q does not say an IPv4 address is wanted", err)
	}
}
