package mssclamp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// fakeTUN is a batch tun.Device: Read copies the next packets of its queue at
// the offset, Write records copies of what it is given (unless record is off).
type fakeTUN struct {
	mtu    atomic.Int64
	mtuErr error
	events chan tun.Event

	mu      sync.Mutex
	queue   [][]byte // packets Read hands out, protected by mu
	perRead int      // at most this many per Read, protected by mu
	readErr error    // returned by Read with the packets, protected by mu
	inPlace []int    // if set, Read leaves bufs alone and returns these sizes, protected by mu
	record  bool     // keep copies of written packets, protected by mu
	written [][]byte // protected by mu
	closes  atomic.Int32
}

func newFakeTUN(mtu int) *fakeTUN {
	f := &fakeTUN{events: make(chan tun.Event, 4), perRead: 128, record: true}
	f.mtu.Store(int64(mtu))
	return f
}

func (f *fakeTUN) File() *os.File { return nil }

func (f *fakeTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inPlace != nil {
		return copy(sizes, f.inPlace), nil
	}
	n := 0
	for n < len(bufs) && n < f.perRead && len(f.queue) > 0 {
		sizes[n] = copy(bufs[n][offset:], f.queue[0])
		f.queue = f.queue[1:]
		n++
	}
	return n, f.readErr
}

func (f *fakeTUN) Write(bufs [][]byte, offset int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.record {
		for _, b := range bufs {
			f.written = append(f.written, bytes.Clone(b[offset:]))
		}
	}
	return len(bufs), nil
}

func (f *fakeTUN) MTU() (int, error)        { return int(f.mtu.Load()), f.mtuErr }
func (f *fakeTUN) Name() (string, error)    { return "fake0", nil }
func (f *fakeTUN) Events() <-chan tun.Event { return f.events }
func (f *fakeTUN) BatchSize() int           { return 128 }
func (f *fakeTUN) Close() error {
	if f.closes.Add(1) == 1 {
		close(f.events)
	}
	return nil
}

// wrap wraps inner and closes the Device at the end of the test.
func wrap(tb testing.TB, inner tun.Device, mtu int) *Device {
	d := Wrap(inner, mtu)
	tb.Cleanup(func() { d.Close() })
	return d
}

// batch returns n buffers of size bytes each and their sizes slice.
func batch(n, size int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	return bufs, make([]int, n)
}

func mssOf(tb testing.TB, pkt []byte) int {
	tb.Helper()
	r, ok := refParse(pkt)
	if !ok || len(r.mss) == 0 {
		tb.Fatalf("packet %x has no MSS option", pkt)
	}
	return int(binary.BigEndian.Uint16(pkt[r.mss[0]:]))
}

func recvEvent(tb testing.TB, ch <-chan tun.Event) (tun.Event, bool) {
	tb.Helper()
	select {
	case ev, ok := <-ch:
		return ev, ok
	case <-time.After(5 * time.Second):
		tb.Fatalf("no event within 5 s")
		return 0, false
	}
}

var (
	testSYN4    = pkt4(nil, tcpHeader(flagSYN, linuxOpts))
	testSYNACK6 = pkt6(protoTCP, nil, tcpHeader(flagSYNACK, linuxOpts))
	testData4   = pkt4(nil, append(tcpHeader(flagACK, nil), bytes.Repeat([]byte{0x5a}, 1380)...))
	testBad4    = pkt4(nil, tcpHeader(flagSYN, []byte{0x02, 0x04, 0x05, 0xb4, 0x08, 0x00, 0x00, 0x00}))
)

func TestDeviceChannelTUN(t *testing.T) {
	for _, offset := range []int{0, 16, 32} {
		t.Run(fmt.Sprintf("offset %d", offset), func(t *testing.T) {
			ch := tuntest.NewChannelTUN()
			d := wrap(t, ch.TUN(), 0) // follows the channel TUN's 1420

			go func() { ch.Outbound <- testSYN4 }()
			bufs, sizes := batch(1, offset+1500)
			if offset > 0 {
				bufs[0][offset-1] = 0xee // a byte before the offset must stay
			}
			n, err := d.Read(bufs, sizes, offset)
			if err != nil || n != 1 {
				t.Fatalf("Read = %d, %v; want 1, nil", n, err)
			}
			got := bufs[0][offset : offset+sizes[0]]
			if mss := mssOf(t, got); mss != 1380 {
				t.Errorf("outbound SYN MSS = %d, want 1380", mss)
			}
			if r, _ := refParse(got); !refChecksumOK(got, r) {
				t.Errorf("outbound SYN checksum invalid")
			}
			if offset > 0 && bufs[0][offset-1] != 0xee {
				t.Errorf("byte before the offset overwritten")
			}

			in := make([]byte, offset+len(testSYNACK6))
			copy(in[offset:], testSYNACK6)
			done := make(chan error, 1)
			go func() { _, err := d.Write([][]byte{in}, offset); done <- err }()
			select {
			case pkt := <-ch.Inbound:
				if mss := mssOf(t, pkt); mss != 1360 {
					t.Errorf("inbound IPv6 SYN-ACK MSS = %d, want 1360", mss)
				}
				if r, _ := refParse(pkt); !refChecksumOK(pkt, r) {
					t.Errorf("inbound SYN-ACK checksum invalid")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Write delivered nothing within 5 s")
			}
			if err := <-done; err != nil {
				t.Fatalf("Write: %v", err)
			}
			if got, want := d.Stats(), (Stats{ClampedOut: 1, ClampedIn: 1}); got != want {
				t.Errorf("Stats = %+v, want %+v", got, want)
			}
			if ev, ok := recvEvent(t, d.Events()); !ok || ev != tun.EventUp {
				t.Errorf("first event = %v, %v; want EventUp", ev, ok)
			}
			if err := d.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if _, ok := recvEvent(t, d.Events()); ok {
				t.Errorf("event channel still open after Close")
			}
		})
	}
}

func TestDeviceBatch(t *testing.T) {
	const offset = 10
	f := newFakeTUN(1420)
	f.queue = [][]byte{testSYN4, testData4, testBad4, testSYNACK6, testData4}
	f.perRead = 4
	f.readErr = errors.New("partial batch") // packets returned with an error are still clamped
	d := wrap(t, f, 0)

	bufs, sizes := batch(6, 1600)
	// buffers beyond n hold a SYN that must stay untouched
	for i := 4; i < 6; i++ {
		copy(bufs[i][offset:], testSYN4)
		sizes[i] = len(testSYN4)
	}
	n, err := d.Read(bufs, sizes, offset)
	if n != 4 || err == nil {
		t.Fatalf("Read = %d, %v; want 4 and the inner error", n, err)
	}
	if mss := mssOf(t, bufs[0][offset:offset+sizes[0]]); mss != 1380 {
		t.Errorf("SYN v4 MSS = %d, want 1380", mss)
	}
	if !bytes.Equal(bufs[1][offset:offset+sizes[1]], testData4) || !bytes.Equal(bufs[2][offset:offset+sizes[2]], testBad4) {
		t.Errorf("data or malformed packet changed")
	}
	if mss := mssOf(t, bufs[3][offset:offset+sizes[3]]); mss != 1360 {
		t.Errorf("SYN-ACK v6 MSS = %d, want 1360", mss)
	}
	for i := 4; i < 6; i++ {
		if mss := mssOf(t, bufs[i][offset:offset+sizes[i]]); mss != 1460 {
			t.Errorf("buffer %d beyond n clamped to %d", i, mss)
		}
	}
	if got, want := d.Stats(), (Stats{ClampedOut: 2, Malformed: 1}); got != want {
		t.Errorf("after Read Stats = %+v, want %+v", got, want)
	}

	out := make([][]byte, 4)
	for i, p := range [][]byte{testSYNACK6, testBad4, testData4, testSYN4} {
		out[i] = append(make([]byte, offset), p...)
	}
	if n, err := d.Write(out, offset); n != 4 || err != nil {
		t.Fatalf("Write = %d, %v; want 4, nil", n, err)
	}
	f.mu.Lock()
	written := f.written
	f.mu.Unlock()
	if len(written) != 4 {
		t.Fatalf("inner device got %d packets, want 4", len(written))
	}
	if mss := mssOf(t, written[0]); mss != 1360 {
		t.Errorf("inner device got SYN-ACK v6 MSS %d, want 1360", mss)
	}
	if !bytes.Equal(written[1], testBad4) || !bytes.Equal(written[2], testData4) {
		t.Errorf("malformed or data packet changed on Write")
	}
	if mss := mssOf(t, written[3]); mss != 1380 {
		t.Errorf("inner device got SYN v4 MSS %d, want 1380", mss)
	}
	if got, want := d.Stats(), (Stats{ClampedOut: 2, ClampedIn: 2, Malformed: 2}); got != want {
		t.Errorf("after Write Stats = %+v, want %+v", got, want)
	}
}

// readSYN reads testSYN4 through d and returns its MSS.
func readSYN(tb testing.TB, f *fakeTUN, d *Device) int {
	tb.Helper()
	f.mu.Lock()
	f.queue = append(f.queue, testSYN4)
	f.mu.Unlock()
	bufs, sizes := batch(1, 1500)
	if n, err := d.Read(bufs, sizes, 0); n != 1 || err != nil {
		tb.Fatalf("Read = %d, %v", n, err)
	}
	return mssOf(tb, bufs[0][:sizes[0]])
}

func TestDeviceMTUUpdate(t *testing.T) {
	tests := []struct {
		name      string
		fixed     int
		innerMTU  int
		innerErr  error
		want      int // MSS of a 1460 SYN read before the update
		newMTU    int
		wantAfter int
	}{
		{name: "follow", fixed: 0, innerMTU: 1500, want: 1460, newMTU: 1420, wantAfter: 1380},
		{name: "follow down to 1280", fixed: 0, innerMTU: 1420, want: 1380, newMTU: 1280, wantAfter: 1240},
		{name: "follow up", fixed: 0, innerMTU: 1280, want: 1240, newMTU: 1420, wantAfter: 1380},
		{name: "follow ignores MTU 0", fixed: 0, innerMTU: 1420, want: 1380, newMTU: 0, wantAfter: 1380},
		{name: "no MTU yet passes", fixed: 0, innerMTU: 0, want: 1460, newMTU: 1420, wantAfter: 1380},
		{name: "fixed ClampMSS 1380", fixed: 1380 + 40, innerMTU: 1500, want: 1380, newMTU: 1280, wantAfter: 1380},
		{name: "fixed below inner", fixed: 1300, innerMTU: 1420, want: 1260, newMTU: 1500, wantAfter: 1260},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeTUN(tc.innerMTU)
			d := wrap(t, f, tc.fixed)
			if got := readSYN(t, f, d); got != tc.want {
				t.Errorf("before update MSS = %d, want %d", got, tc.want)
			}
			f.mtu.Store(int64(tc.newMTU))
			f.events <- tun.EventMTUUpdate | tun.EventUp
			if ev, ok := recvEvent(t, d.Events()); !ok || ev != tun.EventMTUUpdate|tun.EventUp {
				t.Fatalf("event = %v, %v; want the inner event unchanged", ev, ok)
			}
			if got := readSYN(t, f, d); got != tc.wantAfter {
				t.Errorf("after update MSS = %d, want %d", got, tc.wantAfter)
			}
			if m, _ := d.MTU(); m != tc.newMTU {
				t.Errorf("MTU() = %d, want the inner device's %d", m, tc.newMTU)
			}
		})
	}
}

func TestDeviceMTUError(t *testing.T) {
	f := newFakeTUN(1420)
	d := wrap(t, f, 0)
	f.mtu.Store(1280)
	f.mtuErr = errors.New("device gone")
	f.events <- tun.EventMTUUpdate
	recvEvent(t, d.Events())
	if got := readSYN(t, f, d); got != 1380 {
		t.Errorf("MSS after a failed MTU update = %d, want 1380 (the last good MTU)", got)
	}
}

func TestDeviceClose(t *testing.T) {
	t.Run("Close closes inner and events", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFakeTUN(1420)
			d := Wrap(f, 0)
			for range eventBuffer + 2 { // nobody reads: the forwarder blocks, Close must not hang
				f.events <- tun.EventUp
			}
			synctest.Wait() // the forwarder is blocked sending
			for range 2 {
				if err := d.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
			}
			if n := f.closes.Load(); n != 1 {
				t.Errorf("inner Close called %d times, want 1", n)
			}
			for {
				if _, ok := recvEvent(t, d.Events()); !ok {
					break
				}
			}
			if s := d.Stats(); s != (Stats{}) {
				t.Errorf("Stats after Close = %+v", s)
			}
		})
	})
	t.Run("inner closes its events", func(t *testing.T) {
		f := newFakeTUN(1420)
		d := wrap(t, f, 0)
		f.Close()
		if _, ok := recvEvent(t, d.Events()); ok {
			t.Errorf("event channel open after the inner one closed")
		}
	})
	t.Run("concurrent use", func(t *testing.T) {
		f := newFakeTUN(1420)
		f.record = false
		d := Wrap(f, 0)
		var wg sync.WaitGroup
		var updates atomic.Int64
		stop := make(chan struct{})
		readerDone := make(chan struct{})
		wg.Add(2)
		go func() { // reader of events, as wireguard-go's RoutineTUNEventReader
			defer close(readerDone)
			for range d.Events() {
			}
		}()
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				pkt := bytes.Clone(testSYN4)
				d.Write([][]byte{pkt}, 0)
				_ = d.Stats()
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case f.events <- tun.EventMTUUpdate:
					f.mtu.Store(int64(1280 + i%200))
					updates.Add(1)
				case <-time.After(time.Millisecond):
				}
			}
		}()
		// Run until writes and MTU updates have overlapped many times.
		for deadline := time.Now().Add(10 * time.Second); d.Stats().ClampedIn < 1000 || updates.Load() < 100; runtime.Gosched() {
			if time.Now().After(deadline) {
				t.Fatalf("after 10 s: %d packets clamped, %d MTU updates; want 1000 and 100", d.Stats().ClampedIn, updates.Load())
			}
		}
		close(stop)
		wg.Wait() // the inner events channel is closed by Close: stop sending first
		if err := d.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		<-readerDone
		if d.Stats().ClampedIn == 0 {
			t.Errorf("no packet clamped during the concurrent run")
		}
	})
}

// bulkBatch returns 128 buffers holding bulk-transfer packets at offset:
// TCP data, and if withSYN every 64th a SYN so the clamp path is included.
func bulkBatch(offset int, withSYN bool) (bufs [][]byte, sizes []int, orig [][]byte) {
	bufs, sizes = batch(128, offset+1500)
	orig = make([][]byte, 128)
	for i := range bufs {
		p := testData4
		if withSYN && i%64 == 0 {
			p = testSYN4
		}
		orig[i] = p
		sizes[i] = copy(bufs[i][offset:], p)
		bufs[i] = bufs[i][:offset+sizes[i]]
	}
	return bufs, sizes, orig
}

func TestDeviceAllocs(t *testing.T) {
	const offset = 16
	f := newFakeTUN(1420)
	f.record = false
	d := wrap(t, f, 0)
	bufs, sizes, orig := bulkBatch(offset, true)
	if n := testing.AllocsPerRun(50, func() {
		for i := range bufs {
			copy(bufs[i][offset:], orig[i])
		}
		if n, err := d.Write(bufs, offset); n != len(bufs) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}); n != 0 {
		t.Errorf("Write of 128 packets: %v allocations, want 0", n)
	}
	f.inPlace = append([]int(nil), sizes...)
	if n := testing.AllocsPerRun(50, func() {
		for i := range bufs {
			copy(bufs[i][offset:], orig[i])
		}
		if n, err := d.Read(bufs, sizes, offset); n != len(bufs) || err != nil {
			t.Fatalf("Read = %d, %v", n, err)
		}
	}); n != 0 {
		t.Errorf("Read of 128 packets: %v allocations, want 0", n)
	}
	if s := d.Stats(); s.ClampedIn == 0 || s.ClampedOut == 0 {
		t.Errorf("Stats %+v: the batches were not clamped", s)
	}
}
