package gateway

import (
	"bytes"
	"encoding/json"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fobgw/fobgw/dnsfwd"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestBreakoutStatus: the breakout in status (JSON and text) and metrics,
// and nothing of it without the breakout.
func TestBreakoutStatus(t *testing.T) {
	in := &Status{Name: "fobgw0", DNS: dnsfwd.Stats{Local: 42}, Breakout: &BreakoutStatus{
		Resolver: "192.168.2.1:53", Local4: 3, Local6: 1,
		Devices: []BypassDevice{
			{Device: "02:11:22:33:44:55", Addrs: []netip.Addr{netip.MustParseAddr("192.168.86.60")}, Seen: true, Packets: 10, Bytes: 2048},
			{Device: "192.168.86.50", Seen: true, Packets: 5, Bytes: 1000},
			{Device: "192.168.86.70"},
		}}}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Status
	if err := json.Unmarshal(data, &out); err != nil || !reflect.DeepEqual(in.Breakout, out.Breakout) {
		t.Errorf("round trip: %v\n in %+v\nout %+v", err, in.Breakout, out.Breakout)
	}
	for _, key := range []string{`"breakout":{"resolver":"192.168.2.1:53","devices":[{"device":"02:11:22:33:44:55","addrs":["192.168.86.60"],"seen":true,"packets":10,"bytes":2048}`, `"local4":3`, `"local":42`} {
		if !strings.Contains(string(data), key) {
			t.Errorf("JSON lacks %s: %s", key, data)
		}
	}
	var b bytes.Buffer
	if err := in.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"local breakout:   42 questions answered through 192.168.2.1:53; local set 4 addresses (3 IPv4, 1 IPv6)",
		"  bypass 02:11:22:33:44:55 at 192.168.86.60: seen, 10 packets, 2048 B",
		"  bypass 192.168.86.70: not seen, 0 packets, 0 B",
	} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("text lacks %q:\n%s", w, b.String())
		}
	}
	c := newStatusCollector(func() *Status { return in })
	want := `
# HELP fobgw_bypass_devices_seen Bypass devices (and open windows) that sent packets or hold a LAN address now.
# TYPE fobgw_bypass_devices_seen gauge
fobgw_bypass_devices_seen 2
# HELP fobgw_bypass_bytes_total Bytes of bypassed devices, counted by the kernel while they were bypassed.
# TYPE fobgw_bypass_bytes_total counter
fobgw_bypass_bytes_total 3048
# HELP fobgw_local_set_addresses Addresses in the local set (LocalDomains answers) now.
# TYPE fobgw_local_set_addresses gauge
fobgw_local_set_addresses 4
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "fobgw_bypass_devices_seen", "fobgw_bypass_bytes_total", "fobgw_local_set_addresses"); err != nil {
		t.Error(err)
	}
	if pb := pageBreakout(in); pb == nil || pb.LocalSet != 4 || pb.LocalAnswers != 42 || len(pb.Devices) != 3 || pb.Devices[0].Name != "02:11:22:33:44:55 (192.168.86.60)" {
		t.Errorf("page breakout %+v", pb)
	}

	in.Breakout = nil
	b.Reset()
	in.WriteText(&b)
	data, _ = json.Marshal(in)
	if strings.Contains(b.String(), "breakout") || strings.Contains(string(data), "breakout") || pageBreakout(in) != nil {
		t.Errorf("a breakout shown without one:\n%s\n%s", b.String(), data)
	}
}

// TestNeighborsFollowMACs: an address is a bypassed device's while the
// neighbour table gives it that MAC on the LAN interface, and no longer
// once the entry goes, fails, moves to another MAC or is on another link.
func TestNeighborsFollowMACs(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC("02:11:22:33:44:55")
	other, _ := net.ParseMAC("02:99:99:99:99:99")
	n := &neighbors{ifname: "lo", macs: []net.HardwareAddr{mac}, log: discardLogger()}
	m := map[netip.Addr]neigh{}
	n.addrs.Store(&m)
	n.lastLookup.Store(time.Now().Add(time.Hour).UnixNano()) // no kernel lookups here: lo has no such neighbours
	upd := func(typ uint16, ip string, hw net.HardwareAddr, state int, link int) {
		n.update(netlink.NeighUpdate{Type: typ, Neigh: netlink.Neigh{LinkIndex: link, Family: unix.AF_INET, State: state, IP: net.ParseIP(ip), HardwareAddr: hw}})
	}
	a, b := netip.MustParseAddr("192.168.86.60"), netip.MustParseAddr("192.168.86.61")
	upd(unix.RTM_NEWNEIGH, "192.168.86.60", mac, unix.NUD_REACHABLE, lo.Index)
	if !n.bypassed(a) || n.bypassed(b) {
		t.Fatalf("after the device appeared at .60: %v", n.devices())
	}
	upd(unix.RTM_NEWNEIGH, "192.168.86.61", mac, unix.NUD_STALE, lo.Index) // a new lease; the old entry lingers
	if !n.bypassed(b) {
		t.Errorf("the device's new address is not followed: %v", n.devices())
	}
	if got := n.devices()[mac.String()]; len(got) != 2 {
		t.Errorf("devices %v, want both addresses", got)
	}
	upd(unix.RTM_NEWNEIGH, "192.168.86.60", other, unix.NUD_REACHABLE, lo.Index) // .60 now another device's
	upd(unix.RTM_DELNEIGH, "192.168.86.61", mac, unix.NUD_STALE, lo.Index)
	if n.bypassed(a) || n.bypassed(b) {
		t.Errorf("addresses the device left still bypassed: %v", n.devices())
	}
	upd(unix.RTM_NEWNEIGH, "192.168.86.62", mac, unix.NUD_REACHABLE, lo.Index+1000) // another link
	upd(unix.RTM_NEWNEIGH, "192.168.86.63", mac, unix.NUD_FAILED, lo.Index)
	upd(unix.RTM_NEWNEIGH, "192.168.86.64", other, unix.NUD_REACHABLE, lo.Index)
	if d := n.devices(); len(d) != 0 {
		t.Errorf("devices %v, want none", d)
	}
	if len(*n.addrs.Load()) != 2 {
		t.Errorf("LAN neighbours %v, want .60 (another device's) and .64", *n.addrs.Load())
	}
}
