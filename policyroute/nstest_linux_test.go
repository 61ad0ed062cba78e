package policyroute

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/fobgw/fobgw/internal/nstest"
)

// world is the FOB in a fresh network namespace: br0 (LAN, 192.168.86.1/24,
// fd86::1/64), wan0 (192.168.2.2/24, 2001:db8:2::2/64) carrying the main
// table's default routes (the local ISP: where a leak would go), and the
// tunnel fobgw0 (a persistent TUN no process reads).
type world struct {
	h    *netlink.Handle
	ns   netns.NsHandle
	host netns.NsHandle // the namespace the test started in
	lan  netlink.Link
	wan  netlink.Link

	hostSysctls map[string]*os.File // opened in the host namespace
	hostValues  map[string]string   // their values before the test
}

var hostSysctlPaths = []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding", "net/ipv4/conf/all/rp_filter"}

// newWorld locks the test goroutine to its thread and moves that thread into
// a fresh network namespace; cleanup restores the original namespace and
// checks that the host's sysctls did not change.
func newWorld(tb testing.TB) *world {
	tb.Helper()
	w := &world{hostSysctls: map[string]*os.File{}, hostValues: map[string]string{}}
	for _, p := range hostSysctlPaths {
		f, err := os.Open(filepath.Join("/proc/sys", p))
		if err != nil {
			tb.Fatalf("open host sysctl: %v", err)
		}
		w.hostSysctls[p] = f
		w.hostValues[p] = readFile(tb, f)
	}

	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("get current network namespace: %v", err)
	}
	ns, err := netns.New()
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		tb.Fatalf("create a network namespace (kernel tests need root): %v", err)
	}
	w.ns, w.host = ns, orig
	tb.Cleanup(func() {
		if w.h != nil {
			w.h.Close()
		}
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: it dies with the goroutine.
			tb.Errorf("restore original network namespace: %v", err)
			return
		}
		ns.Close()
		orig.Close()
		runtime.UnlockOSThread()
		for p, f := range w.hostSysctls {
			if got := readFile(tb, f); got != w.hostValues[p] {
				tb.Errorf("host sysctl %s changed from %s to %s: a test leaked out of its namespace", p, w.hostValues[p], got)
			}
			f.Close()
		}
	})
	w.h, err = netlink.NewHandleAt(ns)
	if err != nil {
		tb.Fatalf("netlink handle in the test namespace: %v", err)
	}

	// No DAD and no link-local addresses, so that fewer IPv6 routes appear
	// on their own; settle waits for the rest.
	for _, p := range []string{"net/ipv6/conf/all/accept_dad", "net/ipv6/conf/default/accept_dad"} {
		writeSysctl(tb, p, "0")
	}
	writeSysctl(tb, "net/ipv6/conf/default/addr_gen_mode", "1")
	lo, err := w.h.LinkByName("lo")
	if err != nil {
		tb.Fatal(err)
	}
	if err := w.h.LinkSetUp(lo); err != nil {
		tb.Fatal(err)
	}
	w.lan = w.addLink(tb, "bridge", "br0", "192.168.86.1/24", "fd86::1/64")
	w.wan = w.addLink(tb, "ifb", "wan0", "192.168.2.2/24", "2001:db8:2::2/64")
	for _, gw := range []string{"192.168.2.1", "2001:db8:2::1"} {
		r := &netlink.Route{LinkIndex: w.wan.Attrs().Index, Gw: net.ParseIP(gw)}
		if err := w.h.RouteAdd(r); err != nil {
			tb.Fatalf("WAN default via %s: %v", gw, err)
		}
	}
	w.addTunnel(tb)
	w.settle(tb)
	return w
}

// settle waits until every IPv6 address has its local route: the kernel adds
// those from a work queue after the link comes up, and a snapshot taken
// before would differ from one taken after for no fault of the code under test.
func (w *world) settle(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		missing := w.unsettled(tb)
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("IPv6 addresses did not settle in 3s: %s", missing)
		}
		time.Sleep(5 * time.Millisecond) // the work queue announces nothing: looking again is the wait
	}
}

func (w *world) unsettled(tb testing.TB) string {
	addrs, err := w.h.AddrList(nil, netlink.FAMILY_V6)
	if err != nil {
		tb.Fatalf("list addresses: %v", err)
	}
	local, err := w.h.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{Table: unix.RT_TABLE_LOCAL, Type: unix.RTN_LOCAL},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_TYPE)
	if err != nil {
		tb.Fatalf("list local routes: %v", err)
	}
	for _, a := range addrs {
		if a.Flags&unix.IFA_F_TENTATIVE != 0 {
			return a.IPNet.String() + " is tentative"
		}
		found := false
		for _, r := range local {
			if r.Dst != nil && r.Dst.IP.Equal(a.IP) {
				found = true
				break
			}
		}
		if !found {
			return "no local route for " + a.IP.String()
		}
	}
	return ""
}

// addLink creates an up interface of the given kind with the given
// addresses. (This kernel has no dummy or veth: bridge, ifb and tun it has.)
func (w *world) addLink(tb testing.TB, kind, name string, addrs ...string) netlink.Link {
	tb.Helper()
	la := netlink.NewLinkAttrs()
	la.Name = name
	var link netlink.Link
	switch kind {
	case "bridge":
		link = &netlink.Bridge{LinkAttrs: la}
	case "ifb":
		link = &netlink.Ifb{LinkAttrs: la}
	case "tun":
		// Created from this thread, which is in the test namespace.
		link = &netlink.Tuntap{LinkAttrs: la, Mode: netlink.TUNTAP_MODE_TUN, Flags: netlink.TUNTAP_DEFAULTS}
	default:
		tb.Fatalf("unknown link kind %s", kind)
	}
	if err := w.h.LinkAdd(link); err != nil {
		tb.Fatalf("add %s %s: %v", kind, name, err)
	}
	l, err := w.h.LinkByName(name)
	if err != nil {
		tb.Fatal(err)
	}
	nstest.LinkUp(tb, w.h, l, addrs...)
	return l
}

func (w *world) addTunnel(tb testing.TB) netlink.Link {
	l := w.addLink(tb, tunnelKind, "fobgw0", "10.1.200.2/24")
	w.settle(tb)
	return l
}

const tunnelKind = "tun"

// delTunnel deletes the tunnel interface, as the kernel does when the
// process holding the TUN dies.
func (w *world) delTunnel(tb testing.TB) {
	tb.Helper()
	l, err := w.h.LinkByName("fobgw0")
	if err != nil {
		tb.Fatal(err)
	}
	if err := w.h.LinkDel(l); err != nil {
		tb.Fatal(err)
	}
}

func (w *world) router(tb testing.TB, cfg Config, opts ...Option) *Router {
	tb.Helper()
	r, err := New(w.h, cfg, opts...)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return r
}

// snapshot lists every rule and every route of every table, sorted.
func (w *world) snapshot(tb testing.TB) []string {
	return w.dump(tb, false)
}

// owned lists the rules and routes carrying Protocol, sorted.
func (w *world) owned(tb testing.TB) []string {
	return w.dump(tb, true)
}

func (w *world) dump(tb testing.TB, onlyOwned bool) []string {
	tb.Helper()
	var out []string
	rules, err := w.h.RuleList(netlink.FAMILY_ALL)
	if err != nil {
		tb.Fatalf("list rules: %v", err)
	}
	for _, r := range rules {
		if onlyOwned && r.Protocol != Protocol {
			continue
		}
		src := "all"
		if r.Src != nil {
			src = r.Src.String()
		}
		s := fmt.Sprintf("rule %s from %s", famName(r.Family), src)
		if r.IifName != "" {
			s += " iif " + r.IifName
		}
		if r.Mark != 0 || r.Mask != nil {
			s += fmt.Sprintf(" fwmark %#x", r.Mark)
			if r.Mask != nil {
				s += fmt.Sprintf("/%#x", *r.Mask)
			}
		}
		s += fmt.Sprintf(" lookup %d pref %d", r.Table, r.Priority)
		if !onlyOwned {
			s += fmt.Sprintf(" proto %d", r.Protocol)
		}
		out = append(out, s)
	}
	routes, err := w.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		tb.Fatalf("list routes: %v", err)
	}
	for _, r := range routes {
		if onlyOwned && r.Protocol != Protocol {
			continue
		}
		out = append(out, w.routeString(r, !onlyOwned))
	}
	slices.Sort(out)
	return out
}

func (w *world) routeString(r netlink.Route, withProto bool) string {
	s := fmt.Sprintf("route %s table %d ", famName(r.Family), r.Table)
	if r.Type == unix.RTN_UNREACHABLE {
		s += "unreachable "
	} else if r.Type != unix.RTN_UNICAST {
		s += fmt.Sprintf("type%d ", r.Type)
	}
	s += dstOf(r).String()
	if r.Type != unix.RTN_UNREACHABLE {
		s += " dev " + w.ifName(r.LinkIndex)
	}
	if r.Gw != nil {
		s += " via " + r.Gw.String()
	}
	s += fmt.Sprintf(" metric %d", r.Priority)
	if withProto {
		s += fmt.Sprintf(" proto %d", r.Protocol)
	}
	return s
}

func (w *world) ifName(idx int) string {
	l, err := w.h.LinkByIndex(idx)
	if err != nil {
		return fmt.Sprintf("if%d", idx)
	}
	return l.Attrs().Name
}

func famName(f int) string {
	if f == netlink.FAMILY_V6 {
		return "v6"
	}
	return "v4"
}

// routeGet asks the kernel which route a packet from src arriving on iif
// (empty: sent by the gateway itself) to dst takes, as a string; an
// unreachable answer is "unreachable".
func (w *world) routeGet(tb testing.TB, iif, src, dst string) string {
	tb.Helper()
	return w.routeGetMarked(tb, iif, src, dst, 0)
}

// routeGetMarked is routeGet for a packet carrying mark.
func (w *world) routeGetMarked(tb testing.TB, iif, src, dst string, mark uint32) string {
	tb.Helper()
	opts := &netlink.RouteGetOptions{Iif: iif, Mark: mark}
	if src != "" {
		opts.SrcAddr = net.ParseIP(src)
	}
	rs, err := w.h.RouteGetWithOptions(net.ParseIP(dst), opts)
	if errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EHOSTUNREACH) {
		return "unreachable"
	}
	if err != nil {
		tb.Fatalf("route get %s from %s iif %q: %v", dst, src, iif, err)
	}
	if len(rs) != 1 {
		tb.Fatalf("route get %s: %d routes", dst, len(rs))
	}
	if rs[0].Type == unix.RTN_UNREACHABLE {
		return "unreachable"
	}
	return "dev " + w.ifName(rs[0].LinkIndex)
}

func readFile(tb testing.TB, f *os.File) string {
	tb.Helper()
	buf := make([]byte, 64)
	n, err := f.ReadAt(buf, 0)
	if err != nil && n == 0 {
		tb.Fatalf("read %s: %v", f.Name(), err)
	}
	return strings.TrimSpace(string(buf[:n]))
}

// readSysctl and writeSysctl work in the namespace of the calling thread.
func readSysctl(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("/proc/sys", path))
	if err != nil {
		tb.Fatalf("read sysctl: %v", err)
	}
	return strings.TrimSpace(string(b))
}

func writeSysctl(tb testing.TB, path, v string) {
	tb.Helper()
	if err := os.WriteFile(filepath.Join("/proc/sys", path), []byte(v), 0o644); err != nil {
		tb.Fatalf("write sysctl: %v", err)
	}
}

func diff(got, want []string) string {
	var b strings.Builder
	for _, g := range got {
		if !slices.Contains(want, g) {
			fmt.Fprintf(&b, "+ %s\n", g)
		}
	}
	for _, x := range want {
		if !slices.Contains(got, x) {
			fmt.Fprintf(&b, "- %s\n", x)
		}
	}
	if b.Len() == 0 && len(got) != len(want) {
		fmt.Fprintf(&b, "same entries, %d vs %d lines (duplicates)\n", len(got), len(want))
	}
	return b.String()
}

// nlEvent is one rtnetlink notification about a route or a rule.
type nlEvent struct {
	Type    uint16 // unix.RTM_NEWROUTE, RTM_DELROUTE, RTM_NEWRULE, RTM_DELRULE
	Replace bool   // NLM_F_REPLACE: a route replaced another in place
	Table   int
	Dst     netip.Prefix // routes only
	Metric  int          // routes only
	Kind    uint8        // route type: unix.RTN_UNICAST, RTN_UNREACHABLE...
}

func (e nlEvent) String() string {
	op := map[uint16]string{unix.RTM_NEWROUTE: "new route", unix.RTM_DELROUTE: "del route",
		unix.RTM_NEWRULE: "new rule", unix.RTM_DELRULE: "del rule"}[e.Type]
	if e.Replace {
		op += " (replace)"
	}
	return fmt.Sprintf("%s table %d type %d %s metric %d", op, e.Table, e.Kind, e.Dst, e.Metric)
}

// record runs fn and returns, in order, the route and rule notifications
// the test namespace sent meanwhile.
func (w *world) record(tb testing.TB, fn func()) []nlEvent {
	tb.Helper()
	// Created from this thread, so in the test namespace.
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		tb.Fatalf("netlink socket: %v", err)
	}
	defer unix.Close(fd)
	var groups uint32
	for _, g := range []uint32{unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE, unix.RTNLGRP_IPV4_RULE, unix.RTNLGRP_IPV6_RULE} {
		groups |= 1 << (g - 1)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		tb.Fatalf("subscribe to route and rule notifications: %v", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20); err != nil {
		tb.Fatal(err)
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 3}); err != nil {
		tb.Fatal(err)
	}
	fn()
	// A marker route ends the recording.
	const markerTable = 4242
	marker := &netlink.Route{Table: markerTable, Dst: mustIPNet(tb, "198.51.100.0/24"), Type: unix.RTN_UNREACHABLE}
	if err := w.h.RouteAdd(marker); err != nil {
		tb.Fatalf("marker route: %v", err)
	}
	var out []nlEvent
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			tb.Fatalf("read notifications (%d so far): %v", len(out), err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			tb.Fatalf("parse notification: %v", err)
		}
		for _, m := range msgs {
			e := nlEvent{Type: m.Header.Type, Replace: m.Header.Flags&unix.NLM_F_REPLACE != 0}
			if len(m.Data) < unix.SizeofRtMsg {
				continue
			}
			e.Table = int(m.Data[4]) // rtm_table, fib_rule_hdr table
			if e.Type == unix.RTM_NEWROUTE || e.Type == unix.RTM_DELROUTE {
				family, dstLen := m.Data[0], int(m.Data[1])
				e.Kind = m.Data[7]
				addr := netip.IPv4Unspecified()
				if family == unix.AF_INET6 {
					addr = netip.IPv6Unspecified()
				}
				attrs, err := syscall.ParseNetlinkRouteAttr(&m)
				if err != nil {
					tb.Fatalf("parse route notification: %v", err)
				}
				for _, a := range attrs {
					switch a.Attr.Type {
					case unix.RTA_TABLE:
						e.Table = int(binary.NativeEndian.Uint32(a.Value))
					case unix.RTA_PRIORITY:
						e.Metric = int(binary.NativeEndian.Uint32(a.Value))
					case unix.RTA_DST:
						addr, _ = netip.AddrFromSlice(a.Value)
					}
				}
				e.Dst = netip.PrefixFrom(addr, dstLen)
			}
			if e.Table == markerTable {
				if err := w.h.RouteDel(marker); err != nil {
					tb.Fatalf("delete the marker route: %v", err)
				}
				return out
			}
			out = append(out, e)
		}
	}
}
