package masq

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func breakoutCfg(addrs []netip.Addr, macs []net.HardwareAddr) Config {
	return Config{LAN: []netip.Prefix{lan4, lan6}, TunnelInterface: "fobgw0",
		Breakout: Breakout{Enabled: true, LANInterface: "br0", Addrs: addrs, MACs: macs}}
}

func TestBreakoutString(t *testing.T) {
	mac, _ := net.ParseMAC("02:11:22:33:44:55")
	cfg := breakoutCfg([]netip.Addr{netip.MustParseAddr("192.168.86.50"), netip.MustParseAddr("fd86::50")}, []net.HardwareAddr{mac})
	cfg.Enabled = true
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := `table inet fobgw {
	set bypass4 {
		type ipv4_addr
		flags timeout
		counter
		elements = { 192.168.86.50 }
	}

	set bypass6 {
		type ipv6_addr
		flags timeout
		counter
		elements = { fd86::50 }
	}

	set bypassmac {
		type ether_addr
		flags timeout
		counter
		elements = { 02:11:22:33:44:55 }
	}

	set local4 {
		type ipv4_addr
		flags timeout
	}

	set local6 {
		type ipv6_addr
		flags timeout
	}

	chain prerouting {
		type filter hook prerouting priority mangle; policy accept;
		iifname "br0" ct status ! confirmed ether saddr @bypassmac ct mark set ct mark | 0x01000000
		iifname "br0" ct status ! confirmed ip saddr @bypass4 ct mark set ct mark | 0x01000000
		iifname "br0" ct status ! confirmed ip6 saddr @bypass6 ct mark set ct mark | 0x01000000
		iifname "br0" ct status ! confirmed ip daddr @local4 ct mark set ct mark | 0x01000000
		iifname "br0" ct status ! confirmed ip6 daddr @local6 ct mark set ct mark | 0x01000000
		iifname "br0" ct mark & 0x01000000 == 0x01000000 meta mark set meta mark | 0x01000000
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "br0" ct status & confirmed == confirmed ether saddr @bypassmac
		iifname "br0" ct status & confirmed == confirmed ip saddr @bypass4
		iifname "br0" ct status & confirmed == confirmed ip6 saddr @bypass6
		oifname "br0" ip daddr @bypass4
		oifname "br0" ip6 daddr @bypass6
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "fobgw0" ip saddr 192.168.86.0/24 masquerade
		oifname "fobgw0" ip6 saddr fd86::/64 masquerade
		iifname "br0" oifname != "fobgw0" meta mark & 0x01000000 == 0x01000000 masquerade
	}
}
`
	if got := n.String(); got != want {
		t.Errorf("String:\n%s\nwant:\n%s", got, want)
	}
}

func TestBreakoutConfigErrors(t *testing.T) {
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	for _, tc := range []struct {
		name string
		b    Breakout
		want string
	}{
		{"no LAN interface", Breakout{Enabled: true}, "LAN interface"},
		{"outside LAN", Breakout{Enabled: true, LANInterface: "br0", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}, "not inside LAN"},
		{"zero address", Breakout{Enabled: true, LANInterface: "br0", Addrs: []netip.Addr{{}}}, "plain IPv4 or IPv6"},
		{"multicast MAC", Breakout{Enabled: true, LANInterface: "br0", MACs: []net.HardwareAddr{mac("01:00:5e:00:00:01")}}, "unicast"},
		{"long MAC", Breakout{Enabled: true, LANInterface: "br0", MACs: []net.HardwareAddr{mac("02:00:5e:10:00:00:00:01")}}, "6-byte"},
		{"LAN is tunnel", Breakout{Enabled: true, LANInterface: "fobgw0"}, "both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{LAN: []netip.Prefix{lan4}, TunnelInterface: "fobgw0", Breakout: tc.b}
			_, err := New(cfg)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want ErrConfig saying %q", err, tc.want)
			}
		})
	}
}

// breakoutWorld is the gateway between a bridged LAN of three devices, the
// local ISP and a stand-in tunnel, with the policy rules fobgw's
// policyroute sets (the LAN's table: the tunnel; marked packets: main).
//
//	a 192.168.86.254, b 192.168.86.50, c (by MAC) --br0 192.168.86.1 [gw] wan0 192.168.2.2 -- 192.168.2.1 [isp: 203.0.113.80, .81]
//	                                                                   [gw] fobgw0 10.1.200.2 -- 10.1.200.1 [home: 203.0.113.80, .81]
type breakoutWorld struct {
	gw           netns.NsHandle
	a, b, c      netns.NsHandle
	isp, home    *net.UDPConn
	cMAC         net.HardwareAddr
	tb           testing.TB
	gwh          *netlink.Handle
	cLink        netlink.Link
	cAddr        string
	lanNSOfSends map[string]netns.NsHandle
}

func newBreakoutWorld(t *testing.T) *breakoutWorld {
	w := newWorld(t)
	bw := &breakoutWorld{tb: t}
	bw.a, bw.b, bw.c = w.newNS(t), w.newNS(t), w.newNS(t)
	ispNS, homeNS := w.newNS(t), w.newNS(t)
	bw.gw = w.newNS(t) // the thread stays here
	gw := handle(t, bw.gw)
	bw.gwh = gw

	la := netlink.NewLinkAttrs()
	la.Name = "br0"
	br := &netlink.Bridge{LinkAttrs: la}
	if err := gw.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	veth := func(name, peer string, peerNS netns.NsHandle, master netlink.Link) {
		la := netlink.NewLinkAttrs()
		la.Name = name
		if master != nil {
			la.MasterIndex = master.Attrs().Index
		}
		if err := gw.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: peer, PeerNamespace: netlink.NsFd(int(peerNS))}); err != nil {
			t.Fatalf("veth %s: %v", name, err)
		}
		l, _ := gw.LinkByName(name)
		if err := gw.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	veth("pa", "eth0", bw.a, br)
	veth("pb", "eth0", bw.b, br)
	veth("pc", "eth0", bw.c, br)
	veth("wan0", "eth0", ispNS, nil)
	veth("fobgw0", "tun0", homeNS, nil)
	addrs := func(h *netlink.Handle, ifname string, as ...string) netlink.Link { return linkUp(t, h, ifname, as...) }
	route := func(h *netlink.Handle, l netlink.Link, via string, table int) {
		if err := h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP(via), Table: table}); err != nil {
			t.Fatalf("default via %s: %v", via, err)
		}
	}
	ah := handle(t, bw.a)
	al := addrs(ah, "eth0", "192.168.86.254/24", "fd86::254/64")
	route(ah, al, "192.168.86.1", 0)
	route(ah, al, "fd86::1", 0)
	bh := handle(t, bw.b)
	bl := addrs(bh, "eth0", "192.168.86.50/24", "fd86::50/64")
	route(bh, bl, "192.168.86.1", 0)
	route(bh, bl, "fd86::1", 0)
	ch := handle(t, bw.c)
	bw.cLink = addrs(ch, "eth0", "192.168.86.60/24", "fd86::60/64")
	bw.cAddr = "192.168.86.60/24"
	bw.cMAC = bw.cLink.Attrs().HardwareAddr
	route(ch, bw.cLink, "192.168.86.1", 0)
	route(ch, bw.cLink, "fd86::1", 0)
	addrs(gw, "br0", "192.168.86.1/24", "fd86::1/64")
	wan := addrs(gw, "wan0", "192.168.2.2/24", "2001:db8:2::2/64")
	tun := addrs(gw, "fobgw0", "10.1.200.2/24", "fd00:1::2/64")
	route(gw, wan, "192.168.2.1", 0) // main: the local ISP
	route(gw, wan, "2001:db8:2::1", 0)
	route(gw, tun, "10.1.200.1", 100)
	route(gw, tun, "fd00:1::1", 100)
	ih := handle(t, ispNS)
	il := addrs(ih, "eth0", "192.168.2.1/24", "2001:db8:2::1/64")
	route(ih, il, "192.168.2.2", 0) // no way to the LAN but the NAT
	route(ih, il, "2001:db8:2::2", 0)
	addrs(ih, "lo", "203.0.113.80/32", "203.0.113.81/32", "2001:db8:80::80/128")
	hh := handle(t, homeNS)
	addrs(hh, "tun0", "10.1.200.1/24", "fd00:1::1/64")
	addrs(hh, "lo", "203.0.113.80/32", "203.0.113.81/32", "2001:db8:80::80/128")
	// policyroute's rules: marked packets to main ahead of the LAN's table.
	for _, lan := range []*net.IPNet{
		{IP: net.IPv4(192, 168, 86, 0), Mask: net.CIDRMask(24, 32)},
		{IP: net.ParseIP("fd86::"), Mask: net.CIDRMask(64, 128)},
	} {
		fam := netlink.FAMILY_V4
		if lan.IP.To4() == nil {
			fam = netlink.FAMILY_V6
		}
		bypass := netlink.NewRule()
		bypass.Family, bypass.Priority, bypass.Mark, bypass.Table, bypass.IifName, bypass.Src = fam, 5199, Mark, unix.RT_TABLE_MAIN, "br0", lan
		m := Mark
		bypass.Mask = &m
		tunnel := netlink.NewRule()
		tunnel.Family, tunnel.Priority, tunnel.Table, tunnel.IifName, tunnel.Src = fam, 5200, 100, "br0", lan
		for _, r := range []*netlink.Rule{bypass, tunnel} {
			if err := gw.RuleAdd(r); err != nil {
				t.Fatalf("rule %v: %v", r, err)
			}
		}
	}
	// Strict reverse-path filtering everywhere: marked packets must pass it
	// without src_valid_mark.
	for _, p := range []string{"ipv4/ip_forward", "ipv6/conf/all/forwarding", "ipv4/conf/all/rp_filter", "ipv4/conf/br0/rp_filter", "ipv4/conf/wan0/rp_filter", "ipv4/conf/fobgw0/rp_filter"} {
		if err := os.WriteFile("/proc/sys/net/"+p, []byte("1"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	in(t, ispNS, bw.gw, func() { bw.isp, err = net.ListenUDP("udp", &net.UDPAddr{Port: 9999}) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bw.isp.Close() })
	in(t, homeNS, bw.gw, func() { bw.home, err = net.ListenUDP("udp", &net.UDPAddr{Port: 9999}) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bw.home.Close() })
	return bw
}

// dial opens a UDP socket in the device's namespace to dst:9999: a new flow.
func (bw *breakoutWorld) dial(dev netns.NsHandle, dst string) net.Conn {
	bw.tb.Helper()
	var c net.Conn
	var err error
	in(bw.tb, dev, bw.gw, func() { c, err = net.Dial("udp", net.JoinHostPort(dst, "9999")) })
	if err != nil {
		bw.tb.Fatal(err)
	}
	bw.tb.Cleanup(func() { c.Close() })
	return c
}

// seen sends a probe on c and returns where it arrived ("isp" or "home")
// and from which address.
func (bw *breakoutWorld) seen(c net.Conn) string {
	bw.tb.Helper()
	want := fmt.Sprintf("probe %d", time.Now().UnixNano())
	buf := make([]byte, 100)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) { // resend while neighbour discovery settles
		if _, err := c.Write([]byte(want)); err != nil {
			bw.tb.Fatal(err)
		}
		for _, l := range []struct {
			name string
			c    *net.UDPConn
		}{{"isp", bw.isp}, {"home", bw.home}} {
			l.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			for {
				k, from, err := l.c.ReadFromUDPAddrPort(buf)
				if err != nil {
					break
				}
				if string(buf[:k]) == want {
					return l.name + " from " + from.Addr().Unmap().String()
				}
			}
		}
	}
	bw.tb.Fatalf("no probe from %v arrived", c.LocalAddr())
	return ""
}

func (bw *breakoutWorld) expect(what string, dev netns.NsHandle, dst, want string) {
	bw.tb.Helper()
	if got := bw.seen(bw.dial(dev, dst)); got != want {
		bw.tb.Errorf("%s: a new flow to %s arrives at %s, want %s", what, dst, got, want)
	}
}

func TestBreakoutSteers(t *testing.T) {
	bw := newBreakoutWorld(t)
	const isp, home = "isp from 192.168.2.2", "home from "
	bw.expect("without the table", bw.b, "203.0.113.80", home+"192.168.86.50")

	n := newNAT(t, bw.gw, breakoutCfg([]netip.Addr{netip.MustParseAddr("192.168.86.50"), netip.MustParseAddr("fd86::50")}, []net.HardwareAddr{bw.cMAC}))
	if err := n.Apply(); err != nil {
		t.Fatal(err)
	}
	if drift, err := n.Check(); err != nil || len(drift) != 0 {
		t.Fatalf("Check after Apply = %q, %v", drift, err)
	}
	bw.expect("device a, not bypassed", bw.a, "203.0.113.80", home+"192.168.86.254")
	bw.expect("device b, bypassed by address", bw.b, "203.0.113.80", isp)
	bw.expect("device c, bypassed by MAC", bw.c, "203.0.113.80", isp)
	const isp6 = "isp from 2001:db8:2::2"
	bw.expect("device a over IPv6", bw.a, "2001:db8:80::80", home+"fd86::254")
	bw.expect("device b over IPv6, bypassed by its IPv6 address", bw.b, "2001:db8:80::80", isp6)
	bw.expect("device c over IPv6, bypassed by MAC", bw.c, "2001:db8:80::80", isp6)

	// c takes another address (a new DHCP lease): still bypassed.
	ch := handle(t, bw.c)
	old, _ := netlink.ParseAddr(bw.cAddr)
	nu, _ := netlink.ParseAddr("192.168.86.77/24")
	if err := ch.AddrDel(bw.cLink, old); err != nil {
		t.Fatal(err)
	}
	if err := ch.AddrAdd(bw.cLink, nu); err != nil {
		t.Fatal(err)
	}
	if err := ch.RouteAdd(&netlink.Route{LinkIndex: bw.cLink.Attrs().Index, Gw: net.ParseIP("192.168.86.1")}); err != nil {
		t.Fatal(err)
	}
	bw.expect("device c after a new address", bw.c, "203.0.113.80", isp)

	// A destination in the local set: every device's new flows leave
	// directly; a flow that began through the tunnel stays there.
	before := bw.dial(bw.a, "203.0.113.81")
	if got := bw.seen(before); got != home+"192.168.86.254" {
		t.Fatalf("before AddLocal: %s", got)
	}
	ls, err := n.OpenLocalSet()
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	if err := ls.AddLocal([]netip.Addr{netip.MustParseAddr("203.0.113.81"), netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("2001:db8::81")}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	local := nft(t, bw.gw, "list", "set", "inet", "fobgw", "local4")
	if !strings.Contains(local, "203.0.113.81 timeout 1m") || strings.Contains(local, "127.0.0.1") {
		t.Errorf("local4 after AddLocal(5 s) should hold 203.0.113.81 for the minimum, 1m, and no loopback:\n%s", local)
	}
	if got := bw.seen(before); got != home+"192.168.86.254" {
		t.Errorf("a flow that began through the tunnel moved to %s", got)
	}
	after := bw.dial(bw.a, "203.0.113.81")
	if got := bw.seen(after); got != isp {
		t.Errorf("a new flow to a local destination arrives at %s, want %s", got, isp)
	}
	bw.expect("another destination", bw.a, "203.0.113.80", home+"192.168.86.254")
	// The element goes (its timeout): the flow keeps its way, new ones
	// go home.
	nft(t, bw.gw, "delete", "element", "inet", "fobgw", "local4", "{ 203.0.113.81 }")
	if got := bw.seen(after); got != isp {
		t.Errorf("a local flow after its element went arrives at %s, want %s", got, isp)
	}
	bw.expect("a new flow after the element went", bw.a, "203.0.113.81", home+"192.168.86.254")

	// A window for a: bypassed until revoked, then home again.
	devA := Device{Addr: netip.MustParseAddr("192.168.86.254")}
	if err := n.AllowDevice(devA, time.Hour); err != nil {
		t.Fatal(err)
	}
	inWindow := bw.dial(bw.a, "203.0.113.80")
	if got := bw.seen(inWindow); got != isp {
		t.Errorf("device a in a window: %s, want %s", got, isp)
	}
	cnt, err := n.Counters()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("counters: %+v", cnt)
	// nft reads back what String says, rule for rule.
	listed := nft(t, bw.gw, "list", "table", "inet", "fobgw")
	for _, line := range strings.Split(n.String(), "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "iifname") || strings.HasPrefix(line, "oifname") {
			if !strings.Contains(listed, line+" comment") {
				t.Errorf("nft lists no rule %q:\n%s", line, listed)
			}
		}
	}
	byDev := map[string]DeviceCount{}
	for _, d := range cnt.Devices {
		byDev[d.String()] = d
	}
	if d := byDev["192.168.86.50"]; d.Packets == 0 || d.Bytes == 0 || d.Expires != 0 {
		t.Errorf("device b counted %+v, want packets and bytes and no end", d)
	}
	if d := byDev[bw.cMAC.String()]; d.Packets == 0 || d.Expires != 0 {
		t.Errorf("device c counted %+v, want packets and no end", d)
	}
	if d := byDev["192.168.86.254"]; d.Packets == 0 || d.Expires <= 0 || d.Expires > time.Hour {
		t.Errorf("device a's window counted %+v, want packets and an end within the hour", d)
	}
	if cnt.Local4 != 0 || cnt.Local6 != 1 {
		t.Errorf("local sets hold %d and %d, want 0 and 1 (2001:db8::81)", cnt.Local4, cnt.Local6)
	}
	if err := n.RevokeDevice(devA); err != nil {
		t.Fatal(err)
	}
	if err := n.RevokeDevice(devA); err != nil {
		t.Errorf("RevokeDevice without a window: %v", err)
	}
	if err := n.RevokeDevice(Device{Addr: netip.MustParseAddr("192.168.86.50")}); !errors.Is(err, ErrConfig) {
		t.Errorf("RevokeDevice of a Bypass device = %v, want ErrConfig", err)
	}
	bw.expect("device a after its window", bw.a, "203.0.113.80", home+"192.168.86.254")
	if got := bw.seen(inWindow); got != isp {
		t.Errorf("a flow begun in the window, after it: %s, want %s (it finishes direct)", got, isp)
	}
	if drift, err := n.Check(); err != nil || len(drift) != 0 {
		t.Errorf("Check with run-time elements = %q, %v; want no drift", drift, err)
	}

	// Drift: a Bypass element deleted is put back; a local destination and
	// a window survive the repair with the time they had left.
	if err := n.AllowDevice(devA, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := ls.AddLocal([]netip.Addr{netip.MustParseAddr("203.0.113.81")}, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	nft(t, bw.gw, "delete", "element", "inet", "fobgw", "bypass4", "{ 192.168.86.50 }")
	drift, err := n.Repair()
	if err != nil || !slices.Equal(drift, []string{"set bypass4 lacks 192.168.86.50"}) {
		t.Errorf("Repair = %q, %v", drift, err)
	}
	bw.expect("device b after Repair", bw.b, "203.0.113.80", isp)
	bw.expect("device a's window after Repair", bw.a, "203.0.113.80", isp)
	cnt, err = n.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if cnt.Local4 != 1 || cnt.Local6 != 1 {
		t.Errorf("after Repair the local sets hold %d and %d, want 1 and 1", cnt.Local4, cnt.Local6)
	}
	for _, d := range cnt.Devices {
		if d.Addr == devA.Addr && (d.Expires <= 50*time.Minute || d.Expires > time.Hour) {
			t.Errorf("device a's window after Repair ends in %v, want what it had left (about 1h)", d.Expires)
		}
	}
	if out := nft(t, bw.gw, "list", "set", "inet", "fobgw", "local4"); !strings.Contains(out, "203.0.113.81 timeout 10m") && !strings.Contains(out, "203.0.113.81 timeout 9m") {
		t.Errorf("local4 after Repair:\n%s", out)
	}
	if err := n.RevokeDevice(devA); err != nil {
		t.Fatal(err)
	}
	if err := ls.AddLocal([]netip.Addr{netip.MustParseAddr("2001:db8:80::80")}, time.Minute); err != nil {
		t.Fatal(err)
	}
	bw.expect("device a over IPv6 to a local destination", bw.a, "2001:db8:80::80", "isp from 2001:db8:2::2")

	if err := n.Remove(); err != nil {
		t.Fatal(err)
	}
	if out := nft(t, bw.gw, "list", "ruleset"); strings.Contains(out, "fobgw") {
		t.Errorf("after Remove:\n%s", out)
	}
	// The rule alone steers nothing: unmarked, b goes home.
	bw.expect("device b after Remove", bw.b, "203.0.113.80", home+"192.168.86.50")
}
