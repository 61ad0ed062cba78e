package masq

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/fobgw/fobgw/internal/nstest"
)

var (
	lan4 = netip.MustParsePrefix("192.168.86.0/24")
	lan6 = netip.MustParsePrefix("fd86::/64")
)

// world is a set of fresh network namespaces for one test. newWorld locks the
// test goroutine to its OS thread; cleanup moves the thread back to the
// namespace it started in and checks that the nftables tables there are as
// they were.
type world struct {
	host netns.NsHandle
}

func newWorld(tb testing.TB) *world {
	tb.Helper()
	runtime.LockOSThread()
	host, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("get current network namespace: %v", err)
	}
	w := &world{host: host}
	before := w.hostTables(tb)
	tb.Cleanup(func() {
		if err := netns.Set(host); err != nil {
			// Leave the thread locked: it dies with the goroutine.
			tb.Errorf("restore original network namespace: %v", err)
			return
		}
		runtime.UnlockOSThread()
		if after := w.hostTables(tb); !slices.Equal(before, after) {
			tb.Errorf("the host namespace's nftables tables changed from %v to %v: a test leaked out of its namespace", before, after)
		}
		host.Close()
	})
	return w
}

// hostTables lists the tables of the namespace the test started in (read only).
func (w *world) hostTables(tb testing.TB) []string {
	tb.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(w.host)))
	if err != nil {
		tb.Fatal(err)
	}
	ts, err := c.ListTables()
	if err != nil {
		tb.Fatalf("list the host's nftables tables: %v", err)
	}
	var out []string
	for _, t := range ts {
		out = append(out, fmt.Sprintf("%d %s", t.Family, t.Name))
	}
	slices.Sort(out)
	return out
}

// newNS creates a network namespace with lo up and moves the test's thread
// into it; it is closed (and so destroyed) at cleanup.
func (w *world) newNS(tb testing.TB) netns.NsHandle {
	tb.Helper()
	ns, err := netns.New()
	if err != nil {
		tb.Fatalf("create a network namespace (kernel tests need root): %v", err)
	}
	tb.Cleanup(func() { ns.Close() })
	h := handle(tb, ns)
	lo, err := h.LinkByName("lo")
	if err != nil {
		tb.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		tb.Fatal(err)
	}
	return ns
}

// in runs fn with the test's thread in ns, then moves it back to back.
func in(tb testing.TB, ns, back netns.NsHandle, fn func()) {
	tb.Helper()
	if err := netns.Set(ns); err != nil {
		tb.Fatalf("enter namespace: %v", err)
	}
	defer func() {
		if err := netns.Set(back); err != nil {
			tb.Fatalf("return to namespace: %v", err)
		}
	}()
	fn()
}

func handle(tb testing.TB, ns netns.NsHandle) *netlink.Handle {
	tb.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		tb.Fatalf("netlink handle: %v", err)
	}
	tb.Cleanup(h.Close)
	return h
}

func newNAT(tb testing.TB, ns netns.NsHandle, cfg Config) *NAT {
	tb.Helper()
	n, err := New(cfg, WithNetNS(int(ns)))
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func onCfg() Config {
	return Config{Enabled: true, LAN: []netip.Prefix{lan4, lan6}, TunnelInterface: "fobgw0"}
}

// nft runs nft(8) inside ns (through nsenter and an inherited namespace
// file, so that the child cannot start in the wrong namespace) and returns
// its output; the tests use it as an independent reader and as "someone
// else" changing the table.
func nft(tb testing.TB, ns netns.NsHandle, args ...string) string {
	tb.Helper()
	// A duplicate: the File closes its descriptor when done, ns stays open.
	fd, err := unix.Dup(int(ns))
	if err != nil {
		tb.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "netns")
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=/proc/self/fd/3", "nft"}, args...)...)
	cmd.ExtraFiles = []*os.File{f}
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// rules lists the rules of table inet fobgw as nft prints them, without
// handles and comments, in order; nil when the table is missing.
func rules(tb testing.TB, ns netns.NsHandle) []string {
	tb.Helper()
	var out []string
	for _, line := range strings.Split(nft(tb, ns, "list", "ruleset"), "\n") {
		line = strings.TrimSpace(line)
		if strings.Contains(line, "masquerade") {
			line, _, _ = strings.Cut(line, " comment ")
			out = append(out, line)
		}
	}
	return out
}

// ruleHandles lists the handles of the rules in fobgw's chain, in order.
func ruleHandles(tb testing.TB, ns netns.NsHandle) []string {
	tb.Helper()
	var out []string
	for _, line := range strings.Split(nft(tb, ns, "-a", "list", "chain", "inet", "fobgw", "postrouting"), "\n") {
		if _, h, ok := strings.Cut(line, "masquerade"); ok {
			if _, h, ok = strings.Cut(h, "# handle "); ok {
				out = append(out, strings.TrimSpace(h))
			}
		}
	}
	if len(out) != 2 {
		tb.Fatalf("want 2 rule handles in fobgw's chain, have %v", out)
	}
	return out
}

func wantRules() []string {
	return []string{
		`oifname "fobgw0" ip saddr 192.168.86.0/24 masquerade`,
		`oifname "fobgw0" ip6 saddr fd86::/64 masquerade`,
	}
}

func TestApplyTwiceIsOneTable(t *testing.T) {
	w := newWorld(t)
	ns := w.newNS(t)
	n := newNAT(t, ns, onCfg())
	if drift, err := n.Check(); err != nil || !slices.Equal(drift, []string{"table inet fobgw is missing"}) {
		t.Fatalf("Check before Apply = %q, %v; want the table missing", drift, err)
	}
	for i := range 2 {
		if err := n.Apply(); err != nil {
			t.Fatalf("Apply #%d: %v", i+1, err)
		}
	}
	if got := rules(t, ns); !slices.Equal(got, wantRules()) {
		t.Errorf("after Apply twice nft lists:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantRules(), "\n"))
	}
	// nft reads back what String says, line for line (its chain header too).
	listed := nft(t, ns, "list", "table", "inet", "fobgw")
	for _, line := range strings.Split(strings.TrimSpace(n.String()), "\n") {
		if !strings.Contains(listed, strings.TrimSpace(line)) {
			t.Errorf("nft list table inet fobgw lacks %q from String:\n%s", line, listed)
		}
	}
	if !strings.Contains(listed, `comment "fobgw Masquerade"`) {
		t.Errorf("the rules carry no comment naming fobgw:\n%s", listed)
	}
	if drift, err := n.Check(); err != nil || len(drift) != 0 {
		t.Errorf("Check after Apply = %q, %v; want no drift", drift, err)
	}
	if drift, err := n.Repair(); err != nil || len(drift) != 0 {
		t.Errorf("Repair without drift = %q, %v; want nothing done", drift, err)
	}
}

func TestDrift(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, ns netns.NsHandle)
		want  string // in Check's report
	}{
		{"table deleted", func(t *testing.T, ns netns.NsHandle) {
			c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
			if err != nil {
				t.Fatal(err)
			}
			c.DelTable(&nftables.Table{Name: TableName, Family: nftables.TableFamilyINet})
			if err := c.Flush(); err != nil {
				t.Fatal(err)
			}
		}, "table inet fobgw is missing"},
		{"rule deleted", func(t *testing.T, ns netns.NsHandle) {
			// A second connection, as another program would.
			c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
			if err != nil {
				t.Fatal(err)
			}
			tb := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
			rs, err := c.GetRules(tb, &nftables.Chain{Name: ChainName, Table: tb})
			if err != nil || len(rs) != 2 {
				t.Fatalf("rules: %d, %v", len(rs), err)
			}
			if err := c.DelRule(rs[1]); err != nil {
				t.Fatal(err)
			}
			if err := c.Flush(); err != nil {
				t.Fatal(err)
			}
		}, `rule "oifname \"fobgw0\" ip6 saddr fd86::/64 masquerade" is missing`},
		{"chain flushed", func(t *testing.T, ns netns.NsHandle) {
			nft(t, ns, "flush", "chain", "inet", "fobgw", "postrouting")
		}, `rule "oifname \"fobgw0\" ip saddr 192.168.86.0/24 masquerade" is missing`},
		{"rule changed", func(t *testing.T, ns netns.NsHandle) {
			h := ruleHandles(t, ns)[0]
			nft(t, ns, "replace", "rule", "inet", "fobgw", "postrouting", "handle", h,
				"oifname", "fobgw0", "ip", "saddr", "192.168.0.0/16", "masquerade")
		}, `rule 1 of chain postrouting is not "oifname \"fobgw0\" ip saddr 192.168.86.0/24 masquerade"`},
		{"other interface", func(t *testing.T, ns netns.NsHandle) {
			h := ruleHandles(t, ns)[1]
			nft(t, ns, "replace", "rule", "inet", "fobgw", "postrouting", "handle", h,
				"oifname", "fobgw01", "ip6", "saddr", "fd86::/64", "masquerade")
		}, `rule 2 of chain postrouting is not "oifname \"fobgw0\" ip6 saddr fd86::/64 masquerade"`},
		{"rule added", func(t *testing.T, ns netns.NsHandle) {
			nft(t, ns, "add", "rule", "inet", "fobgw", "postrouting", "ip", "saddr", "10.0.0.0/8", "masquerade")
		}, "rule 3 of chain postrouting (handle"},
		{"chain added", func(t *testing.T, ns netns.NsHandle) {
			nft(t, ns, "add", "chain", "inet", "fobgw", "other")
		}, "has a chain other that fobgw did not make"},
		{"table dormant", func(t *testing.T, ns netns.NsHandle) {
			nft(t, ns, "add", "table", "inet", "fobgw", "{ flags dormant; }")
		}, "table inet fobgw is dormant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			ns := w.newNS(t)
			n := newNAT(t, ns, onCfg())
			if err := n.Apply(); err != nil {
				t.Fatal(err)
			}
			tc.spoil(t, ns)
			drift, err := n.Check()
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if !strings.Contains(strings.Join(drift, "\n"), tc.want) {
				t.Errorf("Check = %q, want a line with %q", drift, tc.want)
			}
			if again, _ := n.Check(); !slices.Equal(again, drift) {
				t.Errorf("Check changed something: first %q, then %q", drift, again)
			}
			repaired, err := n.Repair()
			if err != nil || !slices.Equal(repaired, drift) {
				t.Fatalf("Repair = %q, %v; want it to report %q", repaired, err, drift)
			}
			if got := rules(t, ns); !slices.Equal(got, wantRules()) {
				t.Errorf("after Repair nft lists:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantRules(), "\n"))
			}
			if out := nft(t, ns, "list", "table", "inet", "fobgw"); strings.Contains(out, "dormant") || strings.Contains(out, "chain other") {
				t.Errorf("after Repair the table still has someone else's changes:\n%s", out)
			}
			if drift, err := n.Check(); err != nil || len(drift) != 0 {
				t.Errorf("Check after Repair = %q, %v; want no drift", drift, err)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	w := newWorld(t)
	ns := w.newNS(t)
	// Someone else's table with a masquerade rule of its own stays.
	nft(t, ns, "add", "table", "ip", "other")
	nft(t, ns, "add", "chain", "ip", "other", "post", "{ type nat hook postrouting priority srcnat; }")
	nft(t, ns, "add", "rule", "ip", "other", "post", "oifname", "wan0", "masquerade")
	baseline := nft(t, ns, "list", "ruleset")

	n := newNAT(t, ns, onCfg())
	if err := n.Remove(); err != nil {
		t.Fatalf("Remove with nothing installed: %v", err)
	}
	if err := n.Apply(); err != nil {
		t.Fatal(err)
	}
	// Remove is for `fobgw down`, which may run with Masquerade off.
	off := newNAT(t, ns, Config{})
	if drift, err := off.Check(); err != nil || !slices.Equal(drift, []string{"table inet fobgw is present while Masquerade is off"}) {
		t.Errorf("Check with Masquerade off and the table present = %q, %v", drift, err)
	}
	for i := range 2 {
		if err := off.Remove(); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	if got := nft(t, ns, "list", "ruleset"); got != baseline {
		t.Errorf("after Remove the ruleset is\n%s\nwant it as before Apply:\n%s", got, baseline)
	}
	if drift, err := off.Check(); err != nil || len(drift) != 0 {
		t.Errorf("Check with Masquerade off and no table = %q, %v", drift, err)
	}
	// Apply with Masquerade off removes a leftover table.
	if err := n.Apply(); err != nil {
		t.Fatal(err)
	}
	if err := off.Apply(); err != nil {
		t.Fatal(err)
	}
	if got := nft(t, ns, "list", "ruleset"); got != baseline {
		t.Errorf("after Apply with Masquerade off the ruleset is\n%s\nwant:\n%s", got, baseline)
	}
}

// TestTranslates sends UDP from a LAN host through the gateway's namespace
// to a host beyond a stand-in tunnel interface (a veth named fobgw0) and
// reads the source address the far host sees: the LAN address without the
// NAT, the tunnel address with it, the LAN address again after Remove.
//
//	lan: eth0 192.168.86.254 fd86::254 -- lan0 [gw: the NAT] fobgw0 10.1.200.2 fd00:1::2 -- tun0 10.1.200.1 fd00:1::1 [far]
func TestTranslates(t *testing.T) {
	w := newWorld(t)
	lanNS := w.newNS(t)
	farNS := w.newNS(t)
	gwNS := w.newNS(t) // the thread stays here
	lan, far, gw := handle(t, lanNS), handle(t, farNS), handle(t, gwNS)

	veth := func(name, peer string, peerNS netns.NsHandle) {
		la := netlink.NewLinkAttrs()
		la.Name = name
		if err := gw.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: peer, PeerNamespace: netlink.NsFd(int(peerNS))}); err != nil {
			t.Fatalf("veth %s: %v", name, err)
		}
	}
	veth("lan0", "eth0", lanNS)
	veth("fobgw0", "tun0", farNS)
	addrs := func(h *netlink.Handle, ifname string, as ...string) { linkUp(t, h, ifname, as...) }
	addrs(lan, "eth0", "192.168.86.254/24", "fd86::254/64")
	addrs(gw, "lan0", "192.168.86.1/24", "fd86::1/64")
	addrs(gw, "fobgw0", "10.1.200.2/24", "fd00:1::2/64")
	addrs(far, "tun0", "10.1.200.1/24", "fd00:1::1/64") // and no way back to the LAN
	eth0, err := lan.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	for _, via := range []string{"192.168.86.1", "fd86::1"} {
		if err := lan.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.ParseIP(via)}); err != nil {
			t.Fatalf("LAN default via %s: %v", via, err)
		}
	}
	for _, p := range []string{"ipv4/ip_forward", "ipv6/conf/all/forwarding"} {
		// The thread is in gw: this is gw's sysctl.
		if err := os.WriteFile("/proc/sys/net/"+p, []byte("1"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	var listener *net.UDPConn
	in(t, farNS, gwNS, func() {
		listener, err = net.ListenUDP("udp", &net.UDPAddr{Port: 9999}) // both families
	})
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()

	// sourceSeen sends one datagram from a new LAN socket (a new flow, so
	// that conntrack consults the NAT rules afresh) and returns the source
	// address the far host reads.
	sourceSeen := func(dst string) string {
		t.Helper()
		want := fmt.Sprintf("probe %d", time.Now().UnixNano())
		var c net.Conn
		in(t, lanNS, gwNS, func() {
			c, err = net.Dial("udp", net.JoinHostPort(dst, "9999"))
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 100)
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) { // resend while neighbour discovery settles
			if _, err := c.Write([]byte(want)); err != nil {
				t.Fatal(err)
			}
			listener.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			for {
				k, from, err := listener.ReadFromUDPAddrPort(buf)
				if err != nil {
					break
				}
				if string(buf[:k]) == want {
					return from.Addr().Unmap().String()
				}
			}
		}
		t.Fatalf("no datagram to %s reached the far host", dst)
		return ""
	}

	n := newNAT(t, gwNS, onCfg())
	for _, step := range []struct {
		name   string
		do     func() error
		v4, v6 string
	}{
		{"without NAT", func() error { return nil }, "192.168.86.254", "fd86::254"},
		{"after Apply", n.Apply, "10.1.200.2", "fd00:1::2"},
		{"after Remove", n.Remove, "192.168.86.254", "fd86::254"},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := sourceSeen("10.1.200.1"); got != step.v4 {
			t.Errorf("%s the far host sees the LAN's IPv4 datagram from %s, want %s", step.name, got, step.v4)
		}
		if got := sourceSeen("fd00:1::1"); got != step.v6 {
			t.Errorf("%s the far host sees the LAN's IPv6 datagram from %s, want %s", step.name, got, step.v6)
		}
	}
}

// linkUp gives the link ifname in h the addresses as (no duplicate address
// detection) and sets it up.
func linkUp(t *testing.T, h *netlink.Handle, ifname string, as ...string) netlink.Link {
	t.Helper()
	l, err := h.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	nstest.LinkUp(t, h, l, as...)
	return l
}
