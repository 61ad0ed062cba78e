package selfbench

import (
	"bufio"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/fobgw/fobgw/internal/chachapoly"
	"github.com/fobgw/fobgw/mssclamp"
	"github.com/fobgw/fobgw/pmtud"
)

// The data packets' cipher is internal/chachapoly's: the same
// ChaCha20-Poly1305, faster on full-size packets where the processor has
// AVX-512 (its package comment says which), x/crypto's everywhere else.
func init() { device.NewDataAEAD = chachapoly.New }

// Config says what to measure.
type Config struct {
	// Seconds each measurement lasts (one stream up, one down, then 4 each way).
	Seconds float64
	// Window is the packets each stream may have in flight; 0: DefaultWindow.
	Window int
}

// DefaultWindow is a stream's packets in flight: about 350 KiB, under a TCP stream's window
// on a fast path, and within the buffers the devices have under a 16 MiB memory limit.
const DefaultWindow = 256

// Result is what Run measured, in the shape `fobgw bench -json` prints.
type Result struct {
	Arch     string  `json:"arch"`
	CPUs     int     `json:"cpus"`
	Go       string  `json:"go"`
	Emulated bool    `json:"emulated"` // under qemu-user: the figures are not a speed
	Cipher   string  `json:"cipher"`   // the data packets' ChaCha20-Poly1305: "AVX-512" or "x/crypto"
	Seconds  float64 `json:"seconds"`
	Window   int     `json:"window"`
	Packet   int     `json:"packet_bytes"`

	Runs []Measurement `json:"runs"`

	// Peak resident memory of the process (VmHWM: both devices, the generator, the Go runtime).
	PeakRSSAfter1KiB int64 `json:"peak_rss_after_1_stream_kib"`
	PeakRSSKiB       int64 `json:"peak_rss_kib"`

	Published []Figure `json:"published"`
}

// Measurement is one measurement: streams in one direction.
type Measurement struct {
	Streams    int     `json:"streams"`
	Direction  string  `json:"direction"`       // "up": device 1 to 2; "down": 2 to 1
	Mbps       float64 `json:"mbit_per_s"`      // TCP payload that arrived, per second
	CPUPerGbit float64 `json:"cpu_ms_per_gbit"` // process CPU time (user + system) per Gbit of payload
	Packets    int64   `json:"packets"`
	Lost       int64   `json:"lost"` // given up after a full window waited giveUp
}

// Run measures the data path: see the package documentation.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Seconds <= 0 {
		return nil, errors.New("the duration must be positive")
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	var current atomic.Pointer[phase]
	pair, err := newPair(&current)
	if err != nil {
		return nil, err
	}
	defer pair.close()

	// The handshake, both ways, before anything is timed.
	for _, dir := range [][2]*end{{pair[0], pair[1]}, {pair[1], pair[0]}} {
		p := newPhase(dir[0].tun, dir[1].tun, 1, 1)
		current.Store(p)
		dir[0].tun.start()
		select {
		case <-p.arrived:
		case <-time.After(10 * time.Second):
			return nil, errors.New("no packet crossed the tunnel within 10 s: the handshake over loopback UDP failed")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		current.Store(nil)
		close(p.stop)
	}

	res := &Result{
		Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), Go: runtime.Version(),
		Emulated: Emulated(), Cipher: chachapoly.Implementation(), Seconds: cfg.Seconds, Window: cfg.Window, Packet: PacketSize,
		Published: Published,
	}
	d := time.Duration(cfg.Seconds * float64(time.Second))
	for _, streams := range []int{1, 4} {
		for _, dir := range []string{"up", "down"} {
			src, dst := pair[0], pair[1]
			if dir == "down" {
				src, dst = dst, src
			}
			r, err := measure(ctx, &current, src.tun, dst.tun, streams, int64(cfg.Window), d)
			if err != nil {
				return nil, err
			}
			r.Direction = dir
			res.Runs = append(res.Runs, r)
		}
		if streams == 1 {
			res.PeakRSSAfter1KiB = peakRSS()
		}
	}
	res.PeakRSSKiB = peakRSS()
	return res, nil
}

// measure runs one phase for d and returns its figures.
func measure(ctx context.Context, current *atomic.Pointer[phase], src, dst *memTUN, streams int, window int64, d time.Duration) (Measurement, error) {
	p := newPhase(src, dst, streams, window)
	cpu0 := cpuTime()
	t0 := time.Now()
	current.Store(p)
	src.start()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		current.Store(nil)
		close(p.stop)
		return Measurement{}, ctx.Err()
	}
	bytes, packets := p.rxBytes.Load(), p.rxPackets.Load()
	elapsed, cpu := time.Since(t0), cpuTime()-cpu0
	current.Store(nil)
	close(p.stop)
	// What is in flight drains into the next phase's TUNs, which ignore it (other ports).

	r := Measurement{Streams: streams, Packets: packets, Lost: p.lost()}
	gbit := float64(bytes) * 8 / 1e9
	r.Mbps = gbit * 1e3 / elapsed.Seconds()
	if gbit > 0 {
		r.CPUPerGbit = cpu.Seconds() * 1e3 / gbit
	}
	return r, nil
}

// end is one WireGuard device of the pair with its in-memory TUN.
type end struct {
	tun  *memTUN
	dev  *device.Device
	pub  [32]byte
	port int
}

type pairOfEnds [2]*end

// newPair makes the two devices, each stacked as `fobgw run` stacks its own (the TUN, the
// MSS clamp following the TUN's MTU, the path-MTU wrapper outermost), listening on UDP ports
// the kernel chooses, each the other's only peer at 127.0.0.1.
func newPair(current *atomic.Pointer[phase]) (pairOfEnds, error) {
	var pair pairOfEnds
	var priv [2]*ecdh.PrivateKey
	for i := range pair {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			pair.close()
			return pair, err
		}
		priv[i] = k
		e := &end{tun: newMemTUN(byte(i+1), current)}
		copy(e.pub[:], k.PublicKey().Bytes())
		var td tun.Device = mssclamp.Wrap(e.tun, 0)
		td = pmtud.Wrap(td, PacketSize, pmtud.DefaultFloor)
		e.dev = device.NewDevice(td, conn.NewStdNetBind(), device.NewLogger(device.LogLevelSilent, ""))
		pair[i] = e
		if err := e.dev.IpcSet("private_key=" + hex.EncodeToString(k.Bytes()) + "\nlisten_port=0\n"); err != nil {
			pair.close()
			return pair, fmt.Errorf("configure device %d: %w", i+1, err)
		}
		if err := e.dev.Up(); err != nil {
			pair.close()
			return pair, fmt.Errorf("open a UDP port for device %d: %w", i+1, err)
		}
		port, err := listenPort(e.dev)
		if err != nil {
			pair.close()
			return pair, err
		}
		e.port = port
	}
	for i, e := range pair {
		o := pair[1-i]
		c := fmt.Sprintf("public_key=%s\nendpoint=127.0.0.1:%d\nallowed_ip=10.66.0.%d/32\n", hex.EncodeToString(o.pub[:]), o.port, 2-i)
		if err := e.dev.IpcSet(c); err != nil {
			pair.close()
			return pair, fmt.Errorf("configure device %d's peer: %w", i+1, err)
		}
	}
	return pair, nil
}

func (pair pairOfEnds) close() {
	for _, e := range pair {
		if e != nil && e.dev != nil {
			e.dev.Close()
		}
	}
}

// listenPort returns the UDP port the kernel gave the device.
func listenPort(dev *device.Device) (int, error) {
	s, err := dev.IpcGet()
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "listen_port="); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("the device reports no UDP port")
}

// cpuTime returns the CPU time the process used so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS returns the process's peak resident memory (VmHWM) in KiB, 0 when unknown.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
