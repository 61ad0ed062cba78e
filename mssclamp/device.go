package mssclamp

import (
	"os"
	"sync"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/tun"
)

// Stats are the counters of a Device. Device.Stats reads them at any time
// without locks; each counter is monotonic.
type Stats struct {
	// ClampedOut counts packets read from the TUN (towards the peer) whose MSS was lowered.
	ClampedOut uint64
	// ClampedIn counts packets written to the TUN (from the peer) whose MSS was lowered.
	ClampedIn uint64
	// Malformed counts packets of either direction passed unchanged because they
	// are TCP but could not be parsed: an IPv4 header with IHL < 5, a TCP fixed
	// header cut short, an IPv6 extension header (Hop-by-Hop, Routing,
	// Destination Options, Fragment) running past the packet, or a SYN whose
	// data offset, IP length or option list is invalid. Packets that are not
	// TCP, too short to hold an IP header, non-first fragments and non-SYN
	// segments whose fixed TCP header is present are never counted.
	Malformed uint64
}

// eventBuffer is the capacity of the event channel of a Device.
const eventBuffer = 4

// Device is a tun.Device that clamps the TCP MSS (see Clamp) of every packet
// read from the wrapped device (towards the peer, counted as Out) and written
// to it (from the peer, counted as In). All other methods are passed through;
// Events forwards every event of the wrapped device unchanged.
type Device struct {
	inner tun.Device

	mtu        atomic.Int64 // the MTU given to Clamp
	followMTU  bool         // mtu follows EventMTUUpdate
	clampedOut atomic.Uint64
	clampedIn  atomic.Uint64
	malformed  atomic.Uint64

	events    chan tun.Event
	closing   chan struct{} // closed by Close
	forwarded chan struct{} // closed when the event goroutine has closed events
	closeOnce sync.Once
	closeErr  error
}

var _ tun.Device = (*Device)(nil)

// Wrap returns a Device clamping the packets of dev, and starts a goroutine
// forwarding dev's events, which ends when dev closes its event channel or
// when Device.Close is called. Use the Device in place of dev from now on.
//
// mtu > 0 fixes the MTU used for clamping: IPv4 MSS <= mtu-40, IPv6 MSS <=
// mtu-60. A configured MSS value such as ClampMSS = 1380 is therefore passed
// as Wrap(dev, 1380+40), which clamps IPv6 to 20 less (1360). mtu <= 0
// follows dev: dev.MTU() now, and again on every tun.EventMTUUpdate before
// the event is forwarded. Until dev reports an MTU (if dev.MTU fails or
// returns <= 0), packets pass unchanged.
func Wrap(dev tun.Device, mtu int) *Device {
	d := &Device{
		inner:     dev,
		followMTU: mtu <= 0,
		events:    make(chan tun.Event, eventBuffer),
		closing:   make(chan struct{}),
		forwarded: make(chan struct{}),
	}
	if d.followMTU {
		d.updateMTU()
	} else {
		d.mtu.Store(int64(mtu))
	}
	go d.forwardEvents(dev.Events())
	return d
}

func (d *Device) updateMTU() {
	if m, err := d.inner.MTU(); err == nil && m > 0 {
		d.mtu.Store(int64(m))
	}
}

func (d *Device) forwardEvents(in <-chan tun.Event) {
	defer close(d.forwarded)
	defer close(d.events)
	for {
		select {
		case <-d.closing:
			return
		case ev, ok := <-in:
			if !ok {
				return
			}
			if ev&tun.EventMTUUpdate != 0 && d.followMTU {
				d.updateMTU()
			}
			select {
			case d.events <- ev:
			case <-d.closing:
				return
			}
		}
	}
}

// Stats returns the counters. It is safe to call concurrently with
// everything else, also after Close.
func (d *Device) Stats() Stats {
	return Stats{
		ClampedOut: d.clampedOut.Load(),
		ClampedIn:  d.clampedIn.Load(),
		Malformed:  d.malformed.Load(),
	}
}

// Read reads packets from the wrapped device and clamps the n packets it
// returns, bufs[i][offset:offset+sizes[i]], in place. It has the contract of
// tun.Device.Read.
func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := d.inner.Read(bufs, sizes, offset)
	mtu := int(d.mtu.Load())
	for i := range n {
		if pkt := bufs[i][offset : offset+sizes[i]]; !fastPass(pkt) {
			d.count(classify(pkt, mtu), &d.clampedOut)
		}
	}
	return n, err
}

// Write clamps every packet bufs[i][offset:] in place, then writes bufs to
// the wrapped device. It has the contract of tun.Device.Write; the packets
// stay clamped even if the write fails.
func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	mtu := int(d.mtu.Load())
	for _, b := range bufs {
		if pkt := b[offset:]; !fastPass(pkt) {
			d.count(classify(pkt, mtu), &d.clampedIn)
		}
	}
	return d.inner.Write(bufs, offset)
}

func (d *Device) count(r result, clampedCounter *atomic.Uint64) {
	switch r {
	case clamped:
		clampedCounter.Add(1)
	case malformed:
		d.malformed.Add(1)
	}
}

// File returns the file of the wrapped device.
func (d *Device) File() *os.File { return d.inner.File() }

// MTU returns the MTU of the wrapped device (not a fixed clamping MTU).
func (d *Device) MTU() (int, error) { return d.inner.MTU() }

// Name returns the name of the wrapped device.
func (d *Device) Name() (string, error) { return d.inner.Name() }

// Events returns the events of the wrapped device, forwarded unchanged. The
// channel is closed when the wrapped device closes its own, or by Close.
func (d *Device) Events() <-chan tun.Event { return d.events }

// BatchSize returns the batch size of the wrapped device.
func (d *Device) BatchSize() int { return d.inner.BatchSize() }

// Close closes the wrapped device and then the event channel, and returns
// the wrapped device's error. Further calls return the same error.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		close(d.closing)
		d.closeErr = d.inner.Close()
		<-d.forwarded
	})
	return d.closeErr
}
