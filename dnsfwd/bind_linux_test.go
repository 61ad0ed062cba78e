package dnsfwd

import (
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestUpstreamBoundToTunnel runs in a fresh network namespace with two veth pairs: "fobtun0" (the
// tunnel) and "wan0", which holds the only route to the upstream. The forwarder's upstream sockets
// must carry SO_BINDTODEVICE fobtun0, and its query must leave by fobtun0, never by wan0 (seen by
// packet sockets on the peers). Needs root; nothing outside the namespace is touched.
func TestUpstreamBoundToTunnel(t *testing.T) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("get current network namespace: %v", err)
	}
	defer orig.Close()
	ns, err := netns.New() // also switches this thread into it
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("create network namespace: %v (this test needs root)", err)
	}
	defer ns.Close()
	defer func() {
		if err := netns.Set(orig); err != nil {
			t.Errorf("return to the original network namespace: %v; the thread stays locked and dies", err)
			return
		}
		runtime.UnlockOSThread()
	}()

	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle in the namespace: %v", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	upstream := netip.MustParseAddrPort("10.98.0.53:53")
	// pair makes a veth pair name/peer, addresses name, gives upstream a permanent neighbour entry
	// on it (so a query sent there is transmitted, not held for ARP), and returns the peer's index.
	pair := func(name, cidr string) int {
		la := netlink.NewLinkAttrs()
		la.Name = name
		v := &netlink.Veth{LinkAttrs: la, PeerName: name + "p"}
		if err := h.LinkAdd(v); err != nil {
			t.Fatalf("add veth %s: %v", name, err)
		}
		a, _ := netlink.ParseAddr(cidr)
		if err := h.AddrAdd(v, a); err != nil {
			t.Fatalf("address %s on %s: %v", cidr, name, err)
		}
		peer, err := h.LinkByName(name + "p")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range []netlink.Link{v, peer} {
			if err := h.LinkSetUp(l); err != nil {
				t.Fatalf("up %s: %v", l.Attrs().Name, err)
			}
		}
		self, _ := h.LinkByName(name)
		if err := h.NeighAdd(&netlink.Neigh{LinkIndex: self.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
			IP: upstream.Addr().AsSlice(), HardwareAddr: peer.Attrs().HardwareAddr}); err != nil {
			t.Fatalf("neighbour on %s: %v", name, err)
		}
		return peer.Attrs().Index
	}
	tunPeer := pair("fobtun0", "10.99.0.1/24")
	wanPeer := pair("wan0", "10.98.0.1/24")
	tunCap, wanCap := capture(t, tunPeer), capture(t, wanPeer)

	// Control: an unbound socket follows the routes, out of wan0; the capture must see it.
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(upstream))
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("control"))
	c.Close()
	if n := countDNS(wanCap, upstream); n != 1 {
		t.Fatalf("control: saw %d packets to %s on wan0, want 1: the capture does not work", n, upstream)
	}

	f := startForwarder(t, upstream, func(c *Config) {
		c.Interface = "fobtun0"
		c.Timeout = 200 * time.Millisecond
	})
	for i := range f.ups.udp {
		rc, err := f.ups.udp[i].Load().conn.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var dev string
		var rcvbuf int
		var serr, berr error
		rc.Control(func(fd uintptr) {
			dev, serr = unix.GetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
			rcvbuf, berr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		})
		if serr != nil || dev != "fobtun0" {
			t.Errorf("upstream socket %d: SO_BINDTODEVICE = %q, %v; want fobtun0", i, dev, serr)
		}
		if berr != nil || rcvbuf < receiveBuffer { // as root SO_RCVBUFFORCE applies (the kernel doubles it)
			t.Errorf("upstream socket %d: SO_RCVBUF = %d, %v; want at least %d", i, rcvbuf, berr, receiveBuffer)
		}
	}
	// Only UDP here: the forwarder dials upstream TCP lazily from other threads, outside this
	// thread's namespace.
	dc := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	r, _, err := dc.Exchange(query("leak.example", dns.TypeA), f.Addr().String())
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	if r.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL (nobody answers on the tunnel)", dns.RcodeToString[r.Rcode])
	}
	if n, want := countDNS(tunCap, upstream), 1+int(f.Stats().Retransmits); n != want { // first send and retransmissions
		t.Errorf("fobtun0 carried %d queries to %s, want %d", n, upstream, want)
	}
	if n := countDNS(wanCap, upstream); n != 0 {
		t.Errorf("wan0 carried %d queries to %s: the query leaked past the tunnel", n, upstream)
	}
}

// capture opens a packet socket for IPv4 arriving on interface index ifindex (packet(7)).
func capture(tb testing.TB, ifindex int) int {
	tb.Helper()
	proto := int(htons(unix.ETH_P_IP))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		tb.Fatalf("packet socket: %v", err)
	}
	tb.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifindex}); err != nil {
		tb.Fatalf("bind packet socket to %d: %v", ifindex, err)
	}
	tv := unix.NsecToTimeval(int64(300 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		tb.Fatal(err)
	}
	return fd
}

// countDNS reads the capture fd until it is quiet for its timeout and counts IPv4 UDP packets to dst.
func countDNS(fd int, dst netip.AddrPort) int {
	n := 0
	buf := make([]byte, 2048)
	for {
		k, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return n
		}
		p := buf[:k]
		if k < 20 || p[0]>>4 != 4 || p[9] != unix.IPPROTO_UDP {
			continue
		}
		ihl := int(p[0]&0x0f) * 4
		if k < ihl+8 || netip.AddrFrom4([4]byte(p[16:20])) != dst.Addr() || uint16(p[ihl+2])<<8|uint16(p[ihl+3]) != dst.Port() {
			continue
		}
		n++
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
