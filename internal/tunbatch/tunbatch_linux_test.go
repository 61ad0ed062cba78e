// Package tunbatch_test checks, against the kernel, that a Read of
// wireguard-go's TUN (with fobgw's patch 0007) returns the packets the
// kernel has queued as one batch: in order, none lost, and a GSO packet that
// does not fit in the rest of the batch held whole for the next Read.
package tunbatch_test

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/fobgw/fobgw/internal/nstest"
)

const (
	tunName = "tb0"
	offset  = 16 // room the device leaves in front of a packet, as wireguard-go's
	mtu     = 1420
)

var (
	local = netip.MustParseAddr("192.0.2.1")       // on the TUN
	far   = netip.MustParseAddrPort("192.0.2.2:9") // routed into the TUN
)

// TestReadBatch runs in a child process in a fresh network namespace: a TUN,
// and a UDP socket whose datagrams to far the kernel queues into it.
func TestReadBatch(t *testing.T) {
	if !nstest.InFreshNetns(t) {
		return
	}
	// No IPv6 on the TUN: its router solicitations would join the batch.
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	dev, err := tun.CreateTUN(tunName, mtu)
	if err != nil {
		t.Fatalf("create TUN: %v", err)
	}
	defer dev.Close()
	h, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	link, err := h.LinkByName(tunName)
	if err != nil {
		t.Fatal(err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: local.AsSlice(), Mask: net.CIDRMask(24, 32)}, Flags: unix.IFA_F_NODAD}
	if err := h.AddrAdd(link, addr); err != nil {
		t.Fatalf("address on %s: %v", tunName, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(far))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	bufs := make([][]byte, 128) // wireguard-go's batch
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	sizes := make([]int, len(bufs))

	t.Run("single packets", func(t *testing.T) {
		// The datagrams are in the TUN's queue when Write returns: the
		// kernel sends them through the TUN in the writer's own call.
		var sent [][]byte
		for i := range 20 {
			sent = append(sent, send(t, c, i, 100+i))
		}
		expect(t, dev, bufs, sizes, sent)
		sent = [][]byte{send(t, c, 20, 120)}
		expect(t, dev, bufs, sizes, sent)
	})

	t.Run("GSO packet held for the next Read", func(t *testing.T) {
		// 5 datagrams, then one UDP GSO send of 6 segments that the TUN
		// (USO offload on) takes in as one read, with room for 8: the
		// first Read returns the 5, the next the 6 segments.
		var first [][]byte
		for i := range 5 {
			first = append(first, send(t, c, i, 100))
		}
		seg := 1000
		sc, err := c.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var serr error
		if err := sc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, seg)
		}); err != nil || serr != nil {
			t.Fatalf("UDP_SEGMENT: %v %v", err, serr)
		}
		big := make([]byte, 6*seg)
		for i := range big {
			big[i] = byte(i / seg * 7)
		}
		if _, err := c.Write(big); err != nil {
			t.Fatalf("UDP GSO send: %v", err)
		}
		if err := sc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, 0)
		}); err != nil || serr != nil {
			t.Fatalf("UDP_SEGMENT off: %v %v", err, serr)
		}
		var second [][]byte
		for i := range 6 {
			second = append(second, big[i*seg:(i+1)*seg])
		}
		expect(t, dev, bufs[:8], sizes[:8], first)
		expect(t, dev, bufs[:8], sizes[:8], second)
		last := [][]byte{send(t, c, 9, 50)}
		expect(t, dev, bufs[:8], sizes[:8], last)
	})
}

// send sends a datagram of n bytes of i to far and returns its payload.
func send(t *testing.T, c *net.UDPConn, i, n int) []byte {
	t.Helper()
	p := bytes.Repeat([]byte{byte(i)}, n)
	if _, err := c.Write(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// expect makes one Read of dev and fails unless it returns exactly the
// datagrams to far with the payloads want, in order.
func expect(t *testing.T, dev tun.Device, bufs [][]byte, sizes []int, want [][]byte) {
	t.Helper()
	n, err := dev.Read(bufs, sizes, offset)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	for i := range n {
		got, err := payload(bufs[i][offset : offset+sizes[i]])
		switch {
		case err != nil:
			t.Errorf("packet %d of the Read: %v", i, err)
		case i >= len(want):
			t.Errorf("packet %d of the Read: %d bytes starting % x, more than the %d sent", i, len(got), got[:min(len(got), 1)], len(want))
		case !bytes.Equal(got, want[i]):
			t.Errorf("packet %d of the Read: %d bytes starting % x, want %d bytes of %02x", i, len(got), got[:min(len(got), 1)], len(want[i]), want[i][0])
		}
	}
	if n != len(want) {
		t.Fatalf("one Read returned %d packets, want the %d queued", n, len(want))
	}
}

// payload returns the UDP payload of p, an IPv4 datagram without options
// from local to far.
func payload(p []byte) ([]byte, error) {
	if len(p) < 28 || p[0] != 0x45 || p[9] != unix.IPPROTO_UDP {
		return nil, fmt.Errorf("not an IPv4 UDP datagram: % x", p[:min(len(p), 28)])
	}
	src, _ := netip.AddrFromSlice(p[12:16])
	dst, _ := netip.AddrFromSlice(p[16:20])
	port := int(p[22])<<8 | int(p[23])
	if src != local || dst != far.Addr() || port != int(far.Port()) {
		return nil, fmt.Errorf("datagram %v -> %v:%d, want %v -> %v", src, dst, port, local, far)
	}
	if int(p[2])<<8|int(p[3]) != len(p) || len(p) < 28 {
		return nil, fmt.Errorf("IPv4 total length %d, read %d", int(p[2])<<8|int(p[3]), len(p))
	}
	return p[28:], nil
}
