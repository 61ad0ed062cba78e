package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fobgw/fobgw/config"
	"github.com/fobgw/fobgw/mssclamp"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

// synSniffer is a tun.Device that records the MSS option of every TCP SYN
// (without ACK) written to it, that is, arriving from the tunnel.
type synSniffer struct {
	tun.Device
	mu   sync.Mutex
	msss []int // protected by mu
}

func (s *synSniffer) Write(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		if mss, ok := synMSS(b[offset:]); ok {
			s.mu.Lock()
			s.msss = append(s.msss, mss)
			s.mu.Unlock()
		}
	}
	return s.Device.Write(bufs, offset)
}

func (s *synSniffer) seen() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.msss...)
}

// synMSS returns the MSS option of an IPv4 TCP SYN (-1 if it has none).
func synMSS(p []byte) (int, bool) {
	if len(p) < 20 || p[0]>>4 != 4 || p[9] != 6 {
		return 0, false
	}
	ihl := int(p[0]&0x0f) * 4
	if len(p) < ihl+20 {
		return 0, false
	}
	tcp := p[ihl:]
	if tcp[13]&0x12 != 0x02 { // SYN without ACK
		return 0, false
	}
	doff := int(tcp[12]>>4) * 4
	if doff < 20 || len(tcp) < doff {
		return 0, false
	}
	opts := tcp[20:doff]
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0:
			return -1, true
		case 1:
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			return -1, true
		}
		if opts[i] == 2 && opts[i+1] == 4 {
			return int(binary.BigEndian.Uint16(opts[i+2:])), true
		}
		i += int(opts[i+1])
	}
	return -1, true
}

func freeUDPPort(tb testing.TB) uint16 {
	tb.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

// startDevice runs a wireguard-go device on dev configured with uapi.
func startDevice(tb testing.TB, dev tun.Device, uapi, label string) *device.Device {
	tb.Helper()
	d := device.NewDevice(dev, conn.NewStdNetBind(), wgLogger(discardLogger().With("dev", label)))
	tb.Cleanup(d.Close)
	if err := d.IpcSet(uapi); err != nil {
		tb.Fatalf("%s: IpcSet: %v", label, err)
	}
	if err := d.Up(); err != nil {
		tb.Fatalf("%s: Up: %v", label, err)
	}
	return d
}

// TestEndToEndClampOverLoopback: two wireguard-go devices over loopback.
// The FOB side is a netstack with MTU 1500 (a LAN client's view) wrapped by
// mssclamp as the gateway wraps its TUN, configured by the gateway's own
// uapiConfig from a parsed config; the home side is a netstack with MTU
// 1420 and a TCP listener, behind a sniffer. A connection from the FOB side
// arrives with MSS <= 1380 and carries data both ways, with ClampMSS fixed
// at 1380 and with ClampMSS = auto, which follows the TUN's MTU (1420, as
// the gateway's kernel TUN reports it, while the LAN client behind it
// speaks MTU 1500).
func TestEndToEndClampOverLoopback(t *testing.T) {
	for _, tt := range []struct{ name, clamp string }{
		{"fixed", "ClampMSS = 1380"},
		{"auto", "ClampMSS = auto"},
	} {
		t.Run(tt.name, func(t *testing.T) { testEndToEndClamp(t, tt.clamp) })
	}
}

// tunMTU reports a fixed MTU for its device, as the gateway's TUN does.
type tunMTU struct {
	tun.Device
	mtu int
}

func (d tunMTU) MTU() (int, error) { return d.mtu, nil }

func testEndToEndClamp(t *testing.T, clampLine string) {
	fobPort, homePort := freeUDPPort(t), freeUDPPort(t)
	fobKey, _ := config.GenerateKey()
	homeKey, _ := config.GenerateKey()

	text := baseConfig
	text = strings.Replace(text, "PrivateKeyFile = /var/lib/fobgw/private.key", "PrivateKey = "+fobKey.String(), 1)
	text = strings.Replace(text, "ListenPort = 13231", fmt.Sprintf("ListenPort = %d", fobPort), 1)
	text = strings.Replace(text, "PublicKey = If7ysNHrNZ2PmoVW1ckVL1FQApOBPORTAWgAq82zXSA=", "PublicKey = "+homeKey.PublicKey().String(), 1)
	text = strings.Replace(text, "Endpoint = home.example.net:13231", fmt.Sprintf("Endpoint = 127.0.0.1:%d", homePort), 1)
	text = strings.Replace(text, "ClampMSS = auto", clampLine, 1)
	cfg := mustParse(t, text)

	fobAddr, homeAddr := netip.MustParseAddr("10.1.200.2"), netip.MustParseAddr("10.1.200.1")
	homeTun, homeNet, err := netstack.CreateNetTUN([]netip.Addr{homeAddr}, nil, 1420)
	if err != nil {
		t.Fatal(err)
	}
	sniff := &synSniffer{Device: homeTun}
	startDevice(t, sniff, fmt.Sprintf("private_key=%s\nlisten_port=%d\npublic_key=%s\nallowed_ip=10.1.200.2/32\nallowed_ip=192.168.86.0/24\n",
		homeKey.Hex(), homePort, fobKey.PublicKey().Hex()), "home")

	fobTun, fobNet, err := netstack.CreateNetTUN([]netip.Addr{fobAddr}, nil, 1500)
	if err != nil {
		t.Fatal(err)
	}
	mtu, ok := clampMTU(cfg)
	switch {
	case cfg.ClampMode == config.ClampFixed && (!ok || mtu != 1420):
		t.Fatalf("clampMTU(%s) = %d, %v; want 1420, true", clampLine, mtu, ok)
	case cfg.ClampMode == config.ClampAuto && (!ok || mtu != 0):
		t.Fatalf("clampMTU(%s) = %d, %v; want 0 (follow the TUN), true", clampLine, mtu, ok)
	}
	clamp := mssclamp.Wrap(tunMTU{Device: fobTun, mtu: cfg.MTU}, mtu)
	startDevice(t, clamp, uapiConfig(cfg, fobKey, netip.AddrPortFrom(cfg.Endpoint.Addr, cfg.Endpoint.Port)), "fob")

	ln, err := homeNet.ListenTCPAddrPort(netip.AddrPortFrom(homeAddr, 80))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })

	const size = 256 << 10
	up, down := make([]byte, size), make([]byte, size)
	rand.Read(up)
	rand.Read(down)
	gotUp := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			gotUp <- nil
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, size)
		if _, err := io.ReadFull(c, buf); err != nil {
			gotUp <- nil
			return
		}
		gotUp <- buf
		c.Write(down)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := fobNet.DialContextTCPAddrPort(ctx, netip.AddrPortFrom(homeAddr, 80))
	if err != nil {
		t.Fatalf("dial through the tunnel: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var wrote atomic.Bool
	go func() { _, err := c.Write(up); wrote.Store(err == nil) }()
	got := make([]byte, size)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read from home: %v", err)
	}
	if !bytes.Equal(got, down) {
		t.Errorf("data from home corrupted")
	}
	if b := <-gotUp; !bytes.Equal(b, up) {
		t.Errorf("data to home missing or corrupted")
	}
	if !wrote.Load() {
		t.Errorf("write to home failed")
	}

	msss := sniff.seen()
	if len(msss) == 0 {
		t.Fatal("the home side saw no SYN")
	}
	for _, m := range msss {
		if m < 0 || m > 1380 {
			t.Errorf("SYN arrived with MSS %d, want <= 1380 (MTU 1420 - 40)", m)
		}
	}
	if st := clamp.Stats(); st.ClampedOut == 0 {
		t.Errorf("mssclamp counted no clamped SYN: %+v", st)
	}
	t.Logf("SYN MSS at home: %v; clamp stats %+v", msss, clamp.Stats())
}

// TestEndToEndWithoutClamp shows the test can fail: without the clamp the
// SYN arrives with the FOB side's MSS (1460).
func TestEndToEndWithoutClamp(t *testing.T) {
	fobPort, homePort := freeUDPPort(t), freeUDPPort(t)
	fobKey, _ := config.GenerateKey()
	homeKey, _ := config.GenerateKey()
	fobAddr, homeAddr := netip.MustParseAddr("10.1.200.2"), netip.MustParseAddr("10.1.200.1")
	fobTun, fobNet, err := netstack.CreateNetTUN([]netip.Addr{fobAddr}, nil, 1500)
	if err != nil {
		t.Fatal(err)
	}
	startDevice(t, fobTun, fmt.Sprintf("private_key=%s\nlisten_port=%d\npublic_key=%s\nendpoint=127.0.0.1:%d\nallowed_ip=0.0.0.0/0\n",
		fobKey.Hex(), fobPort, homeKey.PublicKey().Hex(), homePort), "fob")
	homeTun, homeNet, err := netstack.CreateNetTUN([]netip.Addr{homeAddr}, nil, 1420)
	if err != nil {
		t.Fatal(err)
	}
	sniff := &synSniffer{Device: homeTun}
	startDevice(t, sniff, fmt.Sprintf("private_key=%s\nlisten_port=%d\npublic_key=%s\nallowed_ip=10.1.200.2/32\n",
		homeKey.Hex(), homePort, fobKey.PublicKey().Hex()), "home")
	ln, err := homeNet.ListenTCPAddrPort(netip.AddrPortFrom(homeAddr, 80))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := fobNet.DialContextTCPAddrPort(ctx, netip.AddrPortFrom(homeAddr, 80))
	if err != nil {
		t.Fatalf("dial through the tunnel: %v", err)
	}
	c.Close()
	if msss := sniff.seen(); len(msss) == 0 || msss[0] != 1460 {
		t.Errorf("unclamped SYN MSS %v, want [1460]", msss)
	}
}
