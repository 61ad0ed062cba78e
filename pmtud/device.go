package pmtud

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/tun"
)

// replyBuffer is the capacity of a Device's reply channel; replies beyond it
// are dropped (a probe then counts as lost).
const replyBuffer = 16

// Device is a tun.Device that carries probes: it rewrites the triggers it
// reads from the wrapped device into echo requests of the probed size, and
// takes the echo replies out of the packets written to it, handing them to
// its Prober. Every other packet passes untouched; on the way it notes
// whether packets larger than the floor crossed (Active).
//
// MTU reports the ceiling, not the wrapped device's MTU: wireguard-go pads
// each packet to a multiple of 16 bytes, capped at the MTU of its tun.Device,
// and a constant cap makes a probe of n bytes exactly as long on the wire as
// a packet of n bytes from the LAN, whatever the TUN's MTU is at the time.
type Device struct {
	inner   tun.Device
	ceiling int
	floor   int
	key     uint64
	icmpID  uint16

	active  atomic.Bool
	replies chan marker
	seq     atomic.Uint32
}

var _ tun.Device = (*Device)(nil)

// Wrap returns a Device carrying probes over dev, whose MTU method reports
// ceiling (see Device). Packets larger than floor count as activity. Use the
// Device in place of dev from now on; it must be the outermost wrapper (the
// one wireguard-go is given), so that wrappers beneath it, such as mssclamp's
// that follows the TUN's MTU, see the TUN's real MTU.
func Wrap(dev tun.Device, ceiling, floor int) *Device {
	var k [10]byte
	rand.Read(k[:]) // never fails (crypto/rand)
	return &Device{
		inner:   dev,
		ceiling: ceiling,
		floor:   floor,
		key:     binary.BigEndian.Uint64(k[:8]),
		icmpID:  binary.BigEndian.Uint16(k[8:]),
		replies: make(chan marker, replyBuffer),
	}
}

// Read reads packets from the wrapped device and rewrites any trigger among
// them in place into its probe. It has the contract of tun.Device.Read; a
// probe may grow a packet up to len(bufs[i])-offset bytes (wireguard-go's
// buffers hold any IP packet).
func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := d.inner.Read(bufs, sizes, offset)
	largest := 0
	for i := range n {
		s := sizes[i]
		if s == triggerLen {
			d.rewrite(bufs[i], &sizes[i], offset)
		}
		largest = max(largest, s)
	}
	if largest > d.floor && !d.active.Load() {
		d.active.Store(true)
	}
	return n, err
}

func (d *Device) rewrite(buf []byte, size *int, offset int) {
	m, ok := parseTrigger(buf[offset:offset+*size], d.key)
	if !ok || offset+int(m.size) > len(buf) {
		return // not ours, or no room: it leaves as the small UDP datagram it is
	}
	writeEcho(buf[offset:], m, d.icmpID)
	*size = int(m.size)
}

// Write takes the replies to probes out of bufs, then writes the rest to the
// wrapped device. It has the contract of tun.Device.Write; bufs itself is
// not modified, and the count includes the replies taken out.
func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	largest, replies := 0, 0
	for _, b := range bufs {
		pkt := b[offset:]
		largest = max(largest, len(pkt))
		if len(pkt) >= MinProbe && pkt[9] == protoICMP {
			if m, ok := parseReply(pkt, d.key, d.icmpID); ok {
				m.size = uint16(len(pkt)) // what arrived
				select {
				case d.replies <- m:
				default:
				}
				replies++
			}
		}
	}
	if largest > d.floor && !d.active.Load() {
		d.active.Store(true)
	}
	if replies == 0 {
		return d.inner.Write(bufs, offset)
	}
	rest := make([][]byte, 0, len(bufs)-replies) // a probe's reply: rare
	for _, b := range bufs {
		if _, ok := parseReply(b[offset:], d.key, d.icmpID); !ok {
			rest = append(rest, b)
		}
	}
	if len(rest) == 0 {
		return replies, nil
	}
	n, err := d.inner.Write(rest, offset)
	return n + replies, err
}

// Active reports whether packets larger than the floor crossed the Device,
// either way, since the last call: only then can a path that shrank hurt
// anyone, and is the current size worth confirming.
func (d *Device) Active() bool { return d.active.Swap(false) }

// MTU returns the ceiling given to Wrap (see Device).
func (d *Device) MTU() (int, error) { return d.ceiling, nil }

// File returns the file of the wrapped device.
func (d *Device) File() *os.File { return d.inner.File() }

// Name returns the name of the wrapped device.
func (d *Device) Name() (string, error) { return d.inner.Name() }

// Events returns the events of the wrapped device.
func (d *Device) Events() <-chan tun.Event { return d.inner.Events() }

// BatchSize returns the batch size of the wrapped device.
func (d *Device) BatchSize() int { return d.inner.BatchSize() }

// Close closes the wrapped device.
func (d *Device) Close() error { return d.inner.Close() }

// ErrLost is returned by Prober.Probe when no reply came in time. It is not
// fatal: the search counts it as a probe that did not get through.
var ErrLost = errors.New("pmtud: probe lost")

// Prober sends probes and waits for their replies.
type Prober interface {
	// Probe sends one probe whose inner IPv4 packet is size bytes and
	// returns nil when its reply of the same size came back within timeout,
	// ErrLost when none did, ctx.Err() when ctx ended first, or another error
	// when the probe could not be sent. Calls are not concurrent.
	Probe(ctx context.Context, size int, timeout time.Duration) error
}

// EchoProber probes through a Device: see Device.Prober.
type EchoProber struct {
	d *Device
	w io.Writer
}

// Prober returns a Prober sending its triggers to w, a UDP socket connected
// to the home router's tunnel address that leaves by the TUN under d (see
// DialTrigger); the probes go to that address. One Prober per Device.
func (d *Device) Prober(w io.Writer) *EchoProber { return &EchoProber{d: d, w: w} }

// Probe implements Prober.
func (p *EchoProber) Probe(ctx context.Context, size int, timeout time.Duration) error {
	if size < MinProbe || size > MaxProbe {
		return fmt.Errorf("pmtud: probe size %d out of range %d-%d", size, MinProbe, MaxProbe)
	}
	seq := p.d.seq.Add(1)
	if _, err := p.w.Write(triggerPayload(p.d.key, seq, size)); err != nil {
		return fmt.Errorf("pmtud: send the trigger of a %d-byte probe: %w", size, err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case m := <-p.d.replies:
			if m.seq != seq {
				continue // late reply of an earlier probe
			}
			if int(m.size) != size {
				return ErrLost // cut short on the way: did not get through whole
			}
			return nil
		case <-t.C:
			return ErrLost
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
