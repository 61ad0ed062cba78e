package gateway

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fobgw/fobgw/health/healthtest"
	"github.com/fobgw/fobgw/internal/netaddr"
	"github.com/fobgw/fobgw/internal/nstest"
	"github.com/fobgw/fobgw/masq"
	"github.com/fobgw/fobgw/policyroute"
	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestRunKernelBreakout runs the gateway with Bypass (by address and by
// MAC) and LocalDomains: the table and the bypass rule are installed, a
// device by MAC is followed through the neighbour table and its questions
// go to Resolver, a LocalDomains answer is in the local set before the
// client has it, status shows it all; a stop keeps the table and the rule
// with the kill switch, and Down removes them.
func TestRunKernelBreakout(t *testing.T) {
	if !nstest.InFreshNetns(t) {
		return
	}
	local := healthtest.StartDNS(t, "127.0.0.1:0") // the local ISP's resolver
	local.Set("tv.example.", netip.MustParseAddr("192.0.2.1"))
	local.Set("www.bank.example.", netip.MustParseAddr("203.0.113.80"))
	w := newKernelWorld(t, map[string]string{
		"Resolver = 192.168.2.1":         "Resolver = " + local.Addr().String() + "\nProbe = 10.1.200.1",
		"MetricsListen = 127.0.0.1:9636": "MetricsListen =\nBypass = 192.168.86.50, 02:11:22:33:44:55\nLocalDomains = bank.example",
	})
	cfg := w.config(t)
	stop, ok, err := w.start(t, cfg)
	if !ok {
		t.Fatal(err)
	}
	nat, err := newNAT(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if drift, err := nat.Check(); err != nil || len(drift) > 0 {
		t.Errorf("table inet fobgw after start: drift %v, %v", drift, err)
	}
	if !w.bypassRule(t) {
		t.Error("no bypass rule after start")
	}

	// The device by MAC takes 192.168.86.60 (on lo here, so that this
	// namespace can ask from it; its neighbour entry is on br0).
	br, _ := w.h.LinkByName("br0")
	lo, _ := w.h.LinkByName("lo")
	if err := w.h.AddrAdd(lo, &netlink.Addr{IPNet: netaddr.IPNet(netip.MustParsePrefix("192.168.86.60/32"))}); err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC("02:11:22:33:44:55")
	if err := w.h.NeighAdd(&netlink.Neigh{LinkIndex: br.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
		IP: net.ParseIP("192.168.86.60"), HardwareAddr: mac}); err != nil {
		t.Fatal(err)
	}
	// Before the table's news arrives, the kernel is asked.
	fresh := &neighbors{ifname: "br0", macs: []net.HardwareAddr{mac}, log: discardLogger()}
	fresh.addrs.Store(&map[netip.Addr]neigh{})
	if !fresh.bypassed(netip.MustParseAddr("192.168.86.60")) || fresh.bypassed(netip.MustParseAddr("192.168.86.61")) {
		t.Error("an address the neighbour table's news has not brought is not looked up in the kernel")
	}
	st := w.waitStatus(t, "the MAC device at 192.168.86.60", func(s *Status) bool {
		return s.Breakout != nil && slices.ContainsFunc(s.Breakout.Devices, func(d BypassDevice) bool {
			return d.Device == mac.String() && slices.Contains(d.Addrs, netip.MustParseAddr("192.168.86.60"))
		})
	})
	if got := askA(t, "192.168.86.60", "tv.example."); got != "192.0.2.1" {
		t.Errorf("the device by MAC got %q for tv.example, want the local answer 192.0.2.1", got)
	}
	// LocalDomains, for any client: in the local set once answered.
	if got := askA(t, "192.168.86.1", "www.bank.example."); got != "203.0.113.80" {
		t.Errorf("www.bank.example: %q, want the local answer 203.0.113.80", got)
	}
	st = w.waitStatus(t, "the local answers counted", func(s *Status) bool { return s.DNS.Local >= 2 })
	if st.Breakout.Local4 != 1 || st.Breakout.Resolver != local.Addr().String() {
		t.Errorf("breakout status %+v, want 1 local IPv4 address and Resolver %v", st.Breakout, local.Addr())
	}
	c, err := nat.Counters()
	if err != nil || c.Local4 != 1 {
		t.Errorf("kernel's local set: %+v, %v", c, err)
	}

	// Stop: the table and the rule stay with the kill switch.
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if drift, err := nat.Check(); err != nil || len(drift) > 0 {
		t.Errorf("table inet fobgw after stop: drift %v, %v; want it whole", drift, err)
	}
	if !w.bypassRule(t) {
		t.Error("the bypass rule went with the stop")
	}
	if err := Down(cfg, Options{Logger: testLogger(t), RunDir: w.runDir}); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if drift, err := nat.Check(); err != nil || len(drift) != 1 || !strings.Contains(drift[0], "missing") {
		t.Errorf("after down: drift %v, %v; want the table missing", drift, err)
	}
	if w.bypassRule(t) {
		t.Error("the bypass rule is left after down")
	}
}

// bypassRule reports whether the breakout's rule is installed.
func (w *kernelWorld) bypassRule(t *testing.T) bool {
	rules, err := w.h.RuleList(netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(rules, func(r netlink.Rule) bool {
		return r.Priority == policyroute.RulePriorityBypass && r.Mark == masq.Mark && r.Table == unix.RT_TABLE_MAIN
	})
}

// waitStatus asks the status socket until ok holds, for up to 10 s.
func (w *kernelWorld) waitStatus(t *testing.T, what string, ok func(*Status) bool) *Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := ReadStatus(ctx, ControlSocket(w.runDir, w.name))
		cancel()
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed %s: %+v", what, st.Breakout)
		}
		// Polled: the status socket answers questions, it pushes nothing.
		time.Sleep(50 * time.Millisecond)
	}
}

// askA asks the gateway's forwarder for name's A record from the address
// from, and returns the first address ("" for none).
func askA(t *testing.T, from, name string) string {
	t.Helper()
	c := &dns.Client{Net: "udp", Timeout: 3 * time.Second, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(from)}}}
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	r, _, err := c.Exchange(m, "192.168.86.1:53")
	if err != nil {
		t.Fatalf("ask %s from %s: %v", name, from, err)
	}
	for _, a := range r.Answer {
		if a, ok := a.(*dns.A); ok {
			return a.A.String()
		}
	}
	return ""
}
