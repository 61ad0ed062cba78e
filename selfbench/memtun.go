package selfbench

import (
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"
)

// giveUp is how long a stream with its window full waits for an arrival before it counts
// what is in flight as lost and opens the window again (a packet the tunnel dropped, e.g. for
// want of a free buffer, never arrives).
const giveUp = 100 * time.Millisecond

// stream is one generated flow. Its window is how many packets may be in flight; returned
// counts the ones that arrived or were given up as lost.
type stream struct {
	pkt      [PacketSize]byte // the next packet to send
	window   int64
	sent     atomic.Int64
	returned atomic.Int64
	lost     atomic.Int64
}

// phase is the traffic of one measurement: streams read from the TUN src and written to dst.
type phase struct {
	src, dst *memTUN
	streams  []*stream
	next     int           // the stream the next packet comes from (only src's reader uses it)
	credit   chan struct{} // signalled when a packet arrives
	stop     chan struct{} // closed when the phase ends

	rxBytes   atomic.Int64 // TCP payload bytes arrived
	rxPackets atomic.Int64
	arrived   chan struct{} // closed at the first arrival
	once      sync.Once
}

func newPhase(src, dst *memTUN, streams int, window int64) *phase {
	p := &phase{
		src: src, dst: dst,
		credit:  make(chan struct{}, 1),
		stop:    make(chan struct{}),
		arrived: make(chan struct{}),
	}
	for i := range streams {
		s := &stream{pkt: template(i, src.addr, dst.addr), window: window}
		p.streams = append(p.streams, s)
	}
	return p
}

// fill copies up to len(bufs) packets of the streams with room in their window into bufs,
// taking turns among the streams; it returns how many.
func (p *phase) fill(bufs [][]byte, sizes []int, offset int) int {
	n := 0
	for idle := 0; n < len(bufs) && idle < len(p.streams); {
		s := p.streams[p.next]
		p.next = (p.next + 1) % len(p.streams)
		if s.sent.Load()-s.returned.Load() >= s.window {
			idle++
			continue
		}
		idle = 0
		sizes[n] = copy(bufs[n][offset:], s.pkt[:])
		advance(s.pkt[:], PayloadSize)
		s.sent.Add(1)
		n++
	}
	return n
}

// giveUpInFlight counts every packet in flight as lost and opens the windows again.
func (p *phase) giveUpInFlight() {
	for _, s := range p.streams {
		inFlight := s.sent.Load() - s.returned.Load()
		s.lost.Add(inFlight)
		s.returned.Add(inFlight)
	}
}

// received counts the packets written to dst.
func (p *phase) received(bufs [][]byte, offset int) {
	n := 0
	for _, b := range bufs {
		i := streamOf(b[offset:], len(p.streams))
		if i < 0 {
			continue
		}
		p.streams[i].returned.Add(1)
		n++
	}
	if n == 0 {
		return
	}
	p.rxPackets.Add(int64(n))
	p.rxBytes.Add(int64(n) * PayloadSize)
	p.once.Do(func() { close(p.arrived) })
	select {
	case p.credit <- struct{}{}:
	default:
	}
}

// lost returns the packets of the phase given up as lost so far.
func (p *phase) lost() int64 {
	var n int64
	for _, s := range p.streams {
		n += s.lost.Load()
	}
	return n
}

// memTUN is an in-memory tun.Device: Read hands out the current phase's packets when the
// phase's src is this TUN, Write counts the packets of a phase whose dst it is.
type memTUN struct {
	addr    byte // the last byte of the tunnel address 10.66.0.x
	current *atomic.Pointer[phase]
	wake    chan struct{} // signalled when a phase starts
	events  chan tun.Event
	closed  chan struct{}
	once    sync.Once
	timer   *time.Timer // only the reader uses it
}

var _ tun.Device = (*memTUN)(nil)

func newMemTUN(addr byte, current *atomic.Pointer[phase]) *memTUN {
	t := &memTUN{
		addr:    addr,
		current: current,
		wake:    make(chan struct{}, 1),
		events:  make(chan tun.Event, 1),
		closed:  make(chan struct{}),
		timer:   time.NewTimer(giveUp),
	}
	t.timer.Stop()
	t.events <- tun.EventUp
	return t
}

// start signals the reader that a phase began.
func (t *memTUN) start() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *memTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	for {
		p := t.current.Load()
		if p == nil || p.src != t {
			select {
			case <-t.wake:
				continue
			case <-t.closed:
				return 0, os.ErrClosed
			}
		}
		if n := p.fill(bufs, sizes, offset); n > 0 {
			return n, nil
		}
		t.timer.Reset(giveUp)
		select {
		case <-p.credit:
		case <-t.timer.C:
			p.giveUpInFlight()
		case <-p.stop:
		case <-t.closed:
			t.timer.Stop()
			return 0, os.ErrClosed
		}
		t.timer.Stop()
	}
}

func (t *memTUN) Write(bufs [][]byte, offset int) (int, error) {
	if p := t.current.Load(); p != nil && p.dst == t {
		p.received(bufs, offset)
	}
	return len(bufs), nil
}

func (t *memTUN) File() *os.File           { return nil }
func (t *memTUN) MTU() (int, error)        { return PacketSize, nil }
func (t *memTUN) Name() (string, error)    { return "mem", nil }
func (t *memTUN) Events() <-chan tun.Event { return t.events }

// BatchSize is what a Linux TUN with offloads reads at once.
func (t *memTUN) BatchSize() int { return conn.IdealBatchSize }

func (t *memTUN) Close() error {
	t.once.Do(func() {
		close(t.closed)
		close(t.events)
	})
	return nil
}
