package policyroute

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// storyOwned is what the story's config installs, in the form of world.owned.
var storyOwned = []string{
	"route v4 table 100 0.0.0.0/0 dev fobgw0 metric 100",
	"route v4 table 100 unreachable 0.0.0.0/0 metric 4000",
	"route v4 table 254 192.168.88.0/24 dev fobgw0 metric 100",
	"route v4 table 254 unreachable 192.168.88.0/24 metric 4000",
	"rule v4 from 192.168.86.0/24 iif br0 lookup 100 pref 5200",
	"rule v4 from all iif br0 lookup 100 pref 5201",
}

func assertOwned(tb testing.TB, w *world, want []string) {
	tb.Helper()
	want = slices.Sorted(slices.Values(want))
	if got := w.owned(tb); !slices.Equal(got, want) {
		tb.Errorf("fobgw's rules and routes differ:\n%s", diff(got, want))
	}
}

func assertSnapshot(tb testing.TB, w *world, want []string, what string) {
	tb.Helper()
	if got := w.snapshot(tb); !slices.Equal(got, want) {
		tb.Errorf("%s: rules and routes differ (+ unexpected, - missing):\n%s", what, diff(got, want))
	}
}

func TestApplyEmptyNamespace(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*Config)
		want []string
	}{
		{"story", func(*Config) {}, storyOwned},
		{"table above 255, no kill switch, two home networks", func(c *Config) {
			c.Table = 1000
			c.KillSwitch = false
			c.HomeNetworks = pfx("192.168.88.0/24", "10.9.0.0/16")
		}, []string{
			"route v4 table 1000 0.0.0.0/0 dev fobgw0 metric 100",
			"route v4 table 254 10.9.0.0/16 dev fobgw0 metric 100",
			"route v4 table 254 192.168.88.0/24 dev fobgw0 metric 100",
			"rule v4 from 192.168.86.0/24 iif br0 lookup 1000 pref 5200",
			"rule v4 from all iif br0 lookup 1000 pref 5201",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			base := w.snapshot(t)
			if got := readSysctl(t, "net/ipv4/ip_forward"); got != "0" {
				t.Fatalf("fresh namespace has ip_forward=%s, want 0 (the test could not see Apply's effect)", got)
			}
			cfg := storyConfig()
			tt.cfg(&cfg)
			r := w.router(t, cfg)
			if err := r.Apply(); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			assertOwned(t, w, tt.want)
			// Nothing but fobgw's entries was added.
			var others []string
			for _, s := range w.snapshot(t) {
				if !strings.HasSuffix(s, fmt.Sprintf("proto %d", Protocol)) {
					others = append(others, s)
				}
			}
			if !slices.Equal(others, base) {
				t.Errorf("Apply changed entries it does not own:\n%s", diff(others, base))
			}
			if got := readSysctl(t, "net/ipv4/ip_forward"); got != "1" {
				t.Errorf("ip_forward in the namespace = %s, want 1", got)
			}
			if got := readSysctl(t, "net/ipv6/conf/all/forwarding"); got != "0" {
				t.Errorf("ipv6 forwarding = %s without a v6 LAN, want 0", got)
			}
		})
	}
}

func TestApplyTwiceChangesNothing(t *testing.T) {
	w := newWorld(t)
	r := w.router(t, storyConfig())
	if err := r.ApplyKillSwitch(); err != nil {
		t.Fatalf("ApplyKillSwitch: %v", err)
	}
	if err := r.Apply(); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	first := w.snapshot(t)
	for i := range 2 {
		if err := r.Apply(); err != nil {
			t.Fatalf("Apply %d: %v", i+2, err)
		}
		if err := r.ApplyKillSwitch(); err != nil {
			t.Fatalf("ApplyKillSwitch again: %v", err)
		}
		assertSnapshot(t, w, first, fmt.Sprintf("after apply %d", i+2))
	}
	if n, err := r.Repair(); err != nil || n != 0 {
		t.Errorf("Repair after Apply = %d, %v; want 0 repairs", n, err)
	}
	assertOwned(t, w, storyOwned)
}

func TestApplyOverCrashLeftovers(t *testing.T) {
	t.Run("same config", func(t *testing.T) {
		w := newWorld(t)
		if err := w.router(t, storyConfig()).Apply(); err != nil {
			t.Fatal(err)
		}
		want := w.snapshot(t)
		// The process dies: the kernel deletes its TUN and the routes on it;
		// the rule and the kill switch stay. A new process starts.
		w.delTunnel(t)
		r := w.router(t, storyConfig())
		if err := r.ApplyKillSwitch(); err != nil {
			t.Fatalf("ApplyKillSwitch over leftovers: %v", err)
		}
		w.addTunnel(t)
		if err := r.Apply(); err != nil {
			t.Fatalf("Apply over leftovers: %v", err)
		}
		// The tunnel has a new index; snapshots name interfaces, so all is
		// as after the first run.
		assertOwned(t, w, storyOwned)
		assertSnapshot(t, w, want, "after the restart")
	})
	t.Run("same entries made by someone else (EEXIST)", func(t *testing.T) {
		w := newWorld(t)
		// Identical to fobgw's kill switch, but proto boot: not fobgw's.
		foreign := &netlink.Route{Table: 100, Dst: mustIPNet(t, "0.0.0.0/0"), Type: unix.RTN_UNREACHABLE, Priority: MetricKillSwitch}
		if err := w.h.RouteAdd(foreign); err != nil {
			t.Fatal(err)
		}
		base := w.snapshot(t)
		r := w.router(t, storyConfig())
		// Table 100 is fobgw's: the route is reported, not taken for ours
		// (its owner may delete it) and not deleted.
		const del = "ip route del unreachable default table 100 metric 4000"
		if err := r.Apply(); !errors.Is(err, ErrForeignRoute) || !strings.Contains(err.Error(), del) {
			t.Fatalf("Apply next to a foreign identical route: %v, want ErrForeignRoute saying %q", err, del)
		}
		want := slices.DeleteFunc(slices.Clone(storyOwned), func(s string) bool { return strings.Contains(s, "table 100 unreachable") })
		assertOwned(t, w, want)
		if got := w.routeGet(t, "br0", "192.168.86.254", "203.0.113.80"); got != "dev fobgw0" {
			t.Errorf("LAN: %s, want dev fobgw0", got)
		}
		if n, err := r.Repair(); n != 0 || !errors.Is(err, ErrForeignRoute) {
			t.Errorf("Repair = %d, %v; want 0 repairs and ErrForeignRoute", n, err)
		}
		if err := r.Remove(false); err != nil {
			t.Fatal(err)
		}
		assertSnapshot(t, w, base, "after Remove: the foreign route stays")
	})
	t.Run("rule added by hand with our protocol", func(t *testing.T) {
		w := newWorld(t)
		rule := nlRule(Rule{Src: pfx("192.168.86.0/24")[0], IifName: "br0", Table: 100, Priority: RulePriority})
		if err := w.h.RuleAdd(rule); err != nil {
			t.Fatal(err)
		}
		if err := w.router(t, storyConfig()).Apply(); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		assertOwned(t, w, storyOwned) // exactly one rule
	})
	t.Run("changed config", func(t *testing.T) {
		w := newWorld(t)
		old := storyConfig()
		old.Table = 200
		old.TunnelInterface = "wg9"
		old.HomeNetworks = pfx("10.9.0.0/16")
		w.addLink(t, "ifb", "wg9")
		if err := w.router(t, old).Apply(); err != nil {
			t.Fatal(err)
		}
		r := w.router(t, storyConfig())
		if err := r.Apply(); err != nil {
			t.Fatalf("Apply with the new config: %v", err)
		}
		assertOwned(t, w, storyOwned)
	})
}

// TestForeignRoutes: routes of others where only fobgw's belong (any route in
// the LAN's table; a main-table route for exactly a home network at a metric
// not above fobgw's) are reported with the command that deletes them, never
// deleted, and everything else is installed regardless.
func TestForeignRoutes(t *testing.T) {
	const (
		tunnelDefault = "route v4 table 100 0.0.0.0/0 dev fobgw0 metric 100"
		tunnelHome    = "route v4 table 254 192.168.88.0/24 dev fobgw0 metric 100"
		killHome      = "route v4 table 254 unreachable 192.168.88.0/24 metric 4000"
	)
	via := func(w *world, table int, dst string, metric int) *netlink.Route {
		return &netlink.Route{Table: table, Dst: mustIPNet(t, dst), LinkIndex: w.wan.Attrs().Index, Gw: net.ParseIP("192.168.2.1"), Priority: metric}
	}
	tests := []struct {
		name       string
		killSwitch bool
		foreign    func(w *world) *netlink.Route
		wantErr    string // "" for no error
		missing    string // the entry of storyOwned the foreign route keeps out
		lan        string // where LAN traffic goes afterwards; "" to skip
	}{
		{"leftover default at the tunnel's metric (EEXIST)", true,
			func(w *world) *netlink.Route { return via(w, 100, "0.0.0.0/0", MetricTunnel) },
			"ip route del default via 192.168.2.1 dev wan0 table 100 metric 100)", tunnelDefault, "dev wan0"},
		{"default at a lower metric", true,
			func(w *world) *netlink.Route {
				return &netlink.Route{Table: 100, Dst: mustIPNet(t, "0.0.0.0/0"), LinkIndex: w.wan.Attrs().Index, Scope: netlink.SCOPE_LINK}
			},
			"ip route del default dev wan0 table 100 metric 0)", "", "dev wan0"},
		{"more specific route in the table", true,
			func(w *world) *netlink.Route { return via(w, 100, "203.0.113.0/24", 5000) },
			"ip route del 203.0.113.0/24 via 192.168.2.1 dev wan0 table 100 metric 5000)", "", "dev wan0"},
		{"v6 route in the table", true,
			func(w *world) *netlink.Route {
				return &netlink.Route{Table: 100, Dst: mustIPNet(t, "::/0"), LinkIndex: w.wan.Attrs().Index, Gw: net.ParseIP("2001:db8:2::1"), Priority: 100}
			},
			"ip -6 route del default via 2001:db8:2::1 dev wan0 table 100 metric 100)", "", "dev fobgw0"},
		{"home network at a lower metric", true,
			func(w *world) *netlink.Route { return via(w, tableMain, "192.168.88.0/24", 50) },
			"ip route del 192.168.88.0/24 via 192.168.2.1 dev wan0 table main metric 50)", "", "dev fobgw0"},
		{"home network at the tunnel's metric (EEXIST)", true,
			func(w *world) *netlink.Route { return via(w, tableMain, "192.168.88.0/24", MetricTunnel) },
			"ip route del 192.168.88.0/24 via 192.168.2.1 dev wan0 table main metric 100)", tunnelHome, "dev fobgw0"},
		{"home network below the kill switch", true,
			func(w *world) *netlink.Route { return via(w, tableMain, "192.168.88.0/24", 1000) },
			"ip route del 192.168.88.0/24 via 192.168.2.1 dev wan0 table main metric 1000)", "", "dev fobgw0"},
		{"home network at the kill switch's metric (EEXIST)", true,
			func(w *world) *netlink.Route { return via(w, tableMain, "192.168.88.0/24", MetricKillSwitch) },
			"ip route del 192.168.88.0/24 via 192.168.2.1 dev wan0 table main metric 4000)", killHome, "dev fobgw0"},
		// Controls: routes that cannot beat fobgw's are fine.
		{"home network above the kill switch", true,
			func(w *world) *netlink.Route { return via(w, tableMain, "192.168.88.0/24", 9000) }, "", "", "dev fobgw0"},
		{"home network above the tunnel's metric, no kill switch", false,
			func(w *world) *netlink.Route { return via(w, tableMain, "192.168.88.0/24", 1000) }, "", "", "dev fobgw0"},
		{"part of a home network", true,
			func(w *world) *netlink.Route { return via(w, tableMain, "192.168.88.0/25", 50) }, "", "", "dev fobgw0"},
		{"home network into the tunnel", true,
			func(w *world) *netlink.Route {
				tun, err := w.h.LinkByName("fobgw0")
				if err != nil {
					t.Fatal(err)
				}
				return &netlink.Route{Dst: mustIPNet(t, "192.168.88.0/24"), LinkIndex: tun.Attrs().Index, Scope: netlink.SCOPE_LINK}
			}, "", "", "dev fobgw0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			if err := w.h.RouteAdd(tt.foreign(w)); err != nil {
				t.Fatalf("add the foreign route: %v", err)
			}
			base := w.snapshot(t)
			cfg := storyConfig()
			cfg.KillSwitch = tt.killSwitch
			r := w.router(t, cfg)
			for _, step := range []struct {
				name string
				run  func() error
			}{{"ApplyKillSwitch", r.ApplyKillSwitch}, {"Apply", r.Apply}, {"Repair", func() error {
				n, err := r.Repair()
				if n != 0 {
					t.Errorf("Repair repaired %d items, want 0", n)
				}
				return err
			}}} {
				err := step.run()
				if tt.wantErr == "" {
					if err != nil {
						t.Fatalf("%s: %v", step.name, err)
					}
					continue
				}
				if !errors.Is(err, ErrForeignRoute) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("%s: %v\nwant ErrForeignRoute saying %q", step.name, err, tt.wantErr)
				}
				if step.name == "Apply" {
					t.Logf("the error reads: %v", err)
				}
			}
			if tt.killSwitch {
				assertOwned(t, w, slices.DeleteFunc(slices.Clone(storyOwned), func(s string) bool { return s == tt.missing }))
			}
			// The foreign route is still there, and nothing else changed.
			var others []string
			for _, s := range w.snapshot(t) {
				if !strings.HasSuffix(s, fmt.Sprintf("proto %d", Protocol)) {
					others = append(others, s)
				}
			}
			if !slices.Equal(others, base) {
				t.Errorf("entries fobgw does not own changed:\n%s", diff(others, base))
			}
			if tt.lan != "" {
				if got := w.routeGet(t, "br0", "192.168.86.254", "203.0.113.80"); got != tt.lan {
					t.Errorf("LAN -> 203.0.113.80: %s, want %s", got, tt.lan)
				}
			}
		})
	}
}

// TestNoFallThrough watches the kernel's notifications while the Router
// works: no LAN rule appears before its table's kill switch, and a tunnel
// route that moves to another interface is replaced in place, so at no point
// LAN or home-bound traffic finds no route of fobgw's.
func TestNoFallThrough(t *testing.T) {
	t.Run("fresh start: the kill switch before the rules", func(t *testing.T) {
		for _, step := range []string{"ApplyKillSwitch", "Apply"} {
			t.Run(step, func(t *testing.T) {
				w := newWorld(t)
				cfg := storyConfig()
				cfg.LAN = pfx("192.168.86.0/24", "fd86::/64")
				r := w.router(t, cfg)
				run := map[string]func() error{"ApplyKillSwitch": r.ApplyKillSwitch, "Apply": r.Apply}[step]
				var err error
				events := w.record(t, func() { err = run() })
				if err != nil {
					t.Fatalf("%s: %v", step, err)
				}
				killSwitches, rules := 0, 0
				for _, e := range events {
					switch {
					case e.Type == unix.RTM_NEWROUTE && e.Table == 100 && e.Kind == unix.RTN_UNREACHABLE:
						killSwitches++
					case e.Type == unix.RTM_NEWRULE:
						rules++
						if killSwitches < 2 {
							t.Errorf("a LAN rule went in before both kill switches of table 100:\n%s", eventList(events))
						}
					}
				}
				// Per family the LAN's rule and the rule for every other source.
				if killSwitches != 2 || rules != 4 {
					t.Errorf("%d kill switches and %d rules added, want 2 and 4:\n%s", killSwitches, rules, eventList(events))
				}
			})
		}
	})
	t.Run("new tunnel interface, no kill switch", func(t *testing.T) {
		for _, steps := range [][]string{{"Apply"}, {"Repair"}, {"ApplyKillSwitch", "Apply"}} {
			t.Run(strings.Join(steps, ", "), func(t *testing.T) {
				w := newWorld(t)
				old := storyConfig()
				old.KillSwitch = false
				old.TunnelInterface = "wg9"
				w.addLink(t, "ifb", "wg9")
				if err := w.router(t, old).Apply(); err != nil {
					t.Fatal(err)
				}
				cfg := storyConfig()
				cfg.KillSwitch = false
				r := w.router(t, cfg)
				var events []nlEvent
				for _, step := range steps {
					var err error
					events = append(events, w.record(t, func() {
						switch step {
						case "ApplyKillSwitch":
							err = r.ApplyKillSwitch()
						case "Apply":
							err = r.Apply()
						case "Repair":
							_, err = r.Repair()
						}
					})...)
					if err != nil {
						t.Fatalf("%s: %v", step, err)
					}
				}
				// One route of fobgw's in each place at the start.
				routes := map[netip.Prefix]int{netip.MustParsePrefix("0.0.0.0/0"): 1, netip.MustParsePrefix("192.168.88.0/24"): 1}
				for _, e := range events {
					if _, ok := routes[e.Dst]; !ok || e.Metric != MetricTunnel {
						continue
					}
					switch {
					case e.Type == unix.RTM_DELROUTE:
						routes[e.Dst]--
					case e.Type == unix.RTM_NEWROUTE && !e.Replace:
						routes[e.Dst]++
					}
					if routes[e.Dst] == 0 {
						t.Errorf("no route to %s after %q:\n%s", e.Dst, e, eventList(events))
					}
				}
				assertOwned(t, w, []string{
					"route v4 table 100 0.0.0.0/0 dev fobgw0 metric 100",
					"route v4 table 254 192.168.88.0/24 dev fobgw0 metric 100",
					"rule v4 from 192.168.86.0/24 iif br0 lookup 100 pref 5200",
					"rule v4 from all iif br0 lookup 100 pref 5201",
				})
			})
		}
	})
}

func eventList(events []nlEvent) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "\t%s\n", e)
	}
	return b.String()
}

func TestRemove(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keepKillSwitch=%v", keep), func(t *testing.T) {
			w := newWorld(t)
			// Routes and rules the user made, some in fobgw's table and at
			// fobgw's priority; Remove must leave them.
			user := []*netlink.Route{
				{Table: 100, Dst: mustIPNet(t, "10.50.0.0/16"), LinkIndex: w.wan.Attrs().Index, Gw: net.ParseIP("192.168.2.1")},
				{Dst: mustIPNet(t, "192.168.88.0/24"), LinkIndex: w.wan.Attrs().Index, Gw: net.ParseIP("192.168.2.1"), Priority: 9000},
			}
			for _, ur := range user {
				if err := w.h.RouteAdd(ur); err != nil {
					t.Fatal(err)
				}
			}
			ur := netlink.NewRule()
			ur.Priority = RulePriority
			ur.Src = mustIPNet(t, "192.168.86.0/25")
			ur.Table = 100
			if err := w.h.RuleAdd(ur); err != nil {
				t.Fatal(err)
			}
			base := w.snapshot(t)

			r := w.router(t, storyConfig())
			// The user's route in table 100 is reported, and left.
			if err := r.Apply(); !errors.Is(err, ErrForeignRoute) || !strings.Contains(err.Error(), "10.50.0.0/16") {
				t.Fatalf("Apply: %v, want ErrForeignRoute naming 10.50.0.0/16", err)
			}
			if err := r.Remove(keep); err != nil {
				t.Fatalf("Remove(%v): %v", keep, err)
			}
			if !keep {
				assertSnapshot(t, w, base, "after Remove(false)")
				return
			}
			assertOwned(t, w, []string{
				"route v4 table 100 unreachable 0.0.0.0/0 metric 4000",
				"route v4 table 254 unreachable 192.168.88.0/24 metric 4000",
				"rule v4 from 192.168.86.0/24 iif br0 lookup 100 pref 5200",
				"rule v4 from all iif br0 lookup 100 pref 5201",
			})
			if got := w.routeGet(t, "br0", "192.168.86.254", "203.0.113.80"); got != "unreachable" {
				t.Errorf("LAN traffic after Remove(true): %s, want unreachable", got)
			}
			if err := r.Remove(false); err != nil {
				t.Fatalf("Remove(false) after Remove(true): %v", err)
			}
			assertSnapshot(t, w, base, "after Remove(false)")
		})
	}
}

// TestKillSwitch: with the tunnel gone, LAN traffic is answered unreachable
// and never leaves through the WAN; the gateway's own traffic keeps the WAN.
func TestKillSwitch(t *testing.T) {
	tests := []struct {
		name       string
		killSwitch bool
		v6         bool
		lan, dst   string
		wantDown   string
	}{
		{"v4", true, false, "192.168.86.254", "203.0.113.80", "unreachable"},
		{"v6", true, true, "fd86::254", "2001:db8:80::80", "unreachable"},
		// The control: without the kill switch the leak is visible, so the
		// assertions above can fail.
		{"v4 without kill switch leaks", false, false, "192.168.86.254", "203.0.113.80", "dev wan0"},
		{"v6 without kill switch leaks", false, true, "fd86::254", "2001:db8:80::80", "dev wan0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			cfg := storyConfig()
			cfg.KillSwitch = tt.killSwitch
			if tt.v6 {
				cfg.LAN = pfx("192.168.86.0/24", "fd86::/64")
			}
			r := w.router(t, cfg)
			if err := r.ApplyKillSwitch(); err != nil {
				t.Fatal(err)
			}
			w.delTunnel(t)
			// Before the tunnel exists.
			if got := w.routeGet(t, "br0", tt.lan, tt.dst); got != tt.wantDown {
				t.Errorf("before the tunnel: LAN %s -> %s: %s, want %s", tt.lan, tt.dst, got, tt.wantDown)
			}
			w.addTunnel(t)
			if err := r.Apply(); err != nil {
				t.Fatal(err)
			}
			if got := w.routeGet(t, "br0", tt.lan, tt.dst); got != "dev fobgw0" {
				t.Errorf("tunnel up: LAN %s -> %s: %s, want dev fobgw0", tt.lan, tt.dst, got)
			}
			if got := w.routeGet(t, "", "", tt.dst); got != "dev wan0" {
				t.Errorf("tunnel up: the gateway's own traffic to %s: %s, want dev wan0", tt.dst, got)
			}
			w.delTunnel(t) // the process crashed
			if got := w.routeGet(t, "br0", tt.lan, tt.dst); got != tt.wantDown {
				t.Errorf("tunnel gone: LAN %s -> %s: %s, want %s", tt.lan, tt.dst, got, tt.wantDown)
			}
			if got := w.routeGet(t, "", "", tt.dst); got != "dev wan0" {
				t.Errorf("tunnel gone: the gateway's own traffic to %s: %s, want dev wan0 (it must heal the tunnel)", tt.dst, got)
			}
			// Check reports the missing tunnel but keeps the kill switch.
			n, err := r.Repair()
			if !errors.Is(err, ErrNoInterface) || !strings.Contains(err.Error(), `"fobgw0"`) {
				t.Errorf("Check without tunnel: %v, want ErrNoInterface naming fobgw0", err)
			}
			if n != 0 {
				t.Errorf("Check without tunnel repaired %d items, want 0", n)
			}
		})
	}
}

// TestKillSwitchOtherSources: a packet that comes in on the LAN interface
// from an address outside LAN (a device with a static address of another
// network, a bridge whose prefix is wider than LAN) meets the LAN's table as
// the LAN's own packets do: the tunnel while it runs, the kill switch when it
// is gone, never the main table's default through the local ISP.
func TestKillSwitchOtherSources(t *testing.T) {
	tests := []struct {
		name     string
		v6       bool
		src, dst string
	}{
		{"v4", false, "10.99.0.5", "203.0.113.80"},
		{"v4, a wider bridge", false, "192.168.87.20", "203.0.113.80"},
		{"v6", true, "fd99::5", "2001:db8:80::80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			cfg := storyConfig()
			if tt.v6 {
				cfg.LAN = pfx("192.168.86.0/24", "fd86::/64")
			}
			r := w.router(t, cfg)
			if err := r.Apply(); err != nil {
				t.Fatal(err)
			}
			if got := w.routeGet(t, "br0", tt.src, tt.dst); got != "dev fobgw0" {
				t.Errorf("tunnel up: %s (not of the LAN) on br0 -> %s: %s, want dev fobgw0", tt.src, tt.dst, got)
			}
			w.delTunnel(t) // the process crashed
			if got := w.routeGet(t, "br0", tt.src, tt.dst); got != "unreachable" {
				t.Errorf("tunnel gone: %s (not of the LAN) on br0 -> %s: %s, want unreachable (never the local ISP)", tt.src, tt.dst, got)
			}
			if got := w.routeGet(t, "", "", tt.dst); got != "dev wan0" {
				t.Errorf("tunnel gone: the gateway's own traffic to %s: %s, want dev wan0", tt.dst, got)
			}
		})
	}
}

// TestHomeNetworkOnLink: a local network that uses the addresses of a home
// network (the hotel's 192.168.88.0/24 is home's too) is no foreign route
// and stops nothing. While the gateway is on it, fobgw leaves out its routes
// for that home network that would win over the local network's route (a
// metric not above it), so the gateway reaches the local network (its way
// out, the local resolver), and keeps those that lose to it, so that the
// moment the gateway leaves the local network, the gateway's own traffic to
// home's addresses meets the tunnel or the kill switch, never the local ISP;
// Repair then puts the rest back, and takes them out when the gateway joins
// such a network again. The LAN reaches home's addresses through the tunnel
// all along. The local network is the kernel's route of an address (metric
// 0 for IPv4, 256 for IPv6), or one a DHCP client adds at its own metric
// (600, as NetworkManager for Wi-Fi).
func TestHomeNetworkOnLink(t *testing.T) {
	addrJoin := func(addr string) func(w *world) func() {
		return func(w *world) func() {
			a, err := netlink.ParseAddr(addr)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.h.AddrAdd(w.wan, a); err != nil {
				t.Fatal(err)
			}
			w.settle(t)
			return func() {
				if err := w.h.AddrDel(w.wan, a); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, tc := range []struct {
		name      string
		v6        bool
		join      func(w *world) func() // joins the local network; returns what leaves it
		withdrawn []string              // fobgw's entries left out while on it
		left      string                // the gateway -> home's host right after leaving, before Repair
	}{
		{"an address of the network (the kernel's route, metric 0)", false, addrJoin("192.168.88.23/24"), nil, "dev fobgw0"},
		{"a DHCP client's route at metric 600", false, func(w *world) func() {
			rt := &netlink.Route{LinkIndex: w.wan.Attrs().Index, Dst: mustIPNet(t, "192.168.88.0/24"), Scope: netlink.SCOPE_LINK, Priority: 600, Protocol: unix.RTPROT_DHCP}
			if err := w.h.RouteAdd(rt); err != nil {
				t.Fatal(err)
			}
			return func() {
				if err := w.h.RouteDel(rt); err != nil {
					t.Fatal(err)
				}
			}
		}, []string{"route v4 table 254 192.168.88.0/24 dev fobgw0 metric 100"}, "unreachable"},
		{"IPv6: an address of the network (the kernel's route, metric 256)", true, addrJoin("fd88::23/64"),
			[]string{"route v6 table 254 fd88::/64 dev fobgw0 metric 100"}, "unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			cfg := storyConfig()
			homeNet, host := netip.MustParsePrefix("192.168.88.0/24"), "192.168.88.1"
			owned := slices.Clone(storyOwned)
			if tc.v6 {
				homeNet, host = netip.MustParsePrefix("fd88::/64"), "fd88::1"
				cfg.HomeNetworks = []netip.Prefix{homeNet}
				owned = slices.DeleteFunc(owned, func(s string) bool { return strings.Contains(s, "192.168.88.0/24") })
				owned = append(owned, "route v6 table 254 fd88::/64 dev fobgw0 metric 100", "route v6 table 254 unreachable fd88::/64 metric 4000")
			}
			onLinkOwned := slices.DeleteFunc(slices.Clone(owned), func(s string) bool { return slices.Contains(tc.withdrawn, s) })
			leave := tc.join(w)
			r := w.router(t, cfg)
			if err := r.ApplyKillSwitch(); err != nil {
				t.Fatalf("ApplyKillSwitch: %v", err)
			}
			if err := r.Apply(); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			onLink := func(want ...netip.Prefix) {
				t.Helper()
				if got := r.HomeNetworksOnLink(); !slices.Equal(got, want) {
					t.Errorf("HomeNetworksOnLink() = %v, want %v", got, want)
				}
			}
			assertOwned(t, w, onLinkOwned)
			onLink(homeNet)
			if got := w.routeGet(t, "", "", host); got != "dev wan0" {
				t.Errorf("on the local network: the gateway -> %s: %s, want dev wan0", host, got)
			}
			if !tc.v6 { // the story's LAN is IPv4 alone
				if got := w.routeGet(t, "br0", "192.168.86.254", host); got != "dev fobgw0" {
					t.Errorf("on the local network: the LAN -> home's %s: %s, want dev fobgw0", host, got)
				}
			}
			if n, err := r.Repair(); n != 0 || err != nil {
				t.Errorf("Repair on the local network = %d, %v; want 0, nil", n, err)
			}

			leave()
			if got := w.routeGet(t, "", "", host); got != tc.left {
				t.Errorf("right after leaving the local network: the gateway -> %s: %s, want %s (never the local ISP)", host, got, tc.left)
			}
			if n, err := r.Repair(); n != len(tc.withdrawn) || err != nil {
				t.Errorf("Repair after leaving the local network = %d, %v; want %d routes back", n, err, len(tc.withdrawn))
			}
			assertOwned(t, w, owned)
			onLink()
			if got := w.routeGet(t, "", "", host); got != "dev fobgw0" {
				t.Errorf("away from it: the gateway -> home %s: %s, want dev fobgw0", host, got)
			}

			tc.join(w)
			if n, err := r.Repair(); n != len(tc.withdrawn) || err != nil {
				t.Errorf("Repair after joining the local network again = %d, %v; want %d routes out", n, err, len(tc.withdrawn))
			}
			assertOwned(t, w, onLinkOwned)
			onLink(homeNet)
			if got := w.routeGet(t, "", "", host); got != "dev wan0" {
				t.Errorf("on the local network again: the gateway -> %s: %s, want dev wan0", host, got)
			}
		})
	}
}

func TestHomeRoutes(t *testing.T) {
	w := newWorld(t)
	r := w.router(t, storyConfig())
	if err := r.Apply(); err != nil {
		t.Fatal(err)
	}
	if got := w.routeGet(t, "", "", "192.168.88.1"); got != "dev fobgw0" {
		t.Errorf("gateway -> home 192.168.88.1: %s, want dev fobgw0", got)
	}
	if got := w.routeGet(t, "", "", "192.168.89.1"); got != "dev wan0" {
		t.Errorf("gateway -> 192.168.89.1 (not home): %s, want dev wan0", got)
	}
	w.delTunnel(t)
	if got := w.routeGet(t, "", "", "192.168.88.1"); got != "unreachable" {
		t.Errorf("tunnel gone: gateway -> home: %s, want unreachable (never the local ISP)", got)
	}
	if got := w.routeGet(t, "br0", "192.168.86.254", "192.168.88.1"); got != "unreachable" {
		t.Errorf("tunnel gone: LAN -> home: %s, want unreachable", got)
	}
	assertOwned(t, w, []string{
		"route v4 table 100 unreachable 0.0.0.0/0 metric 4000",
		"route v4 table 254 unreachable 192.168.88.0/24 metric 4000",
		"rule v4 from 192.168.86.0/24 iif br0 lookup 100 pref 5200",
		"rule v4 from all iif br0 lookup 100 pref 5201",
	})
}

func TestRPFilter(t *testing.T) {
	t.Run("calling thread", func(t *testing.T) {
		w := newWorld(t)
		writeSysctl(t, "net/ipv4/conf/all/rp_filter", "1") // strict everywhere
		r := w.router(t, storyConfig())
		if err := r.ApplyKillSwitch(); err != nil {
			t.Fatal(err)
		}
		if got := readSysctl(t, "net/ipv4/conf/fobgw0/rp_filter"); got == "2" {
			t.Fatalf("rp_filter already 2 before Apply; the test could not see Apply's effect")
		}
		if err := r.Apply(); err != nil {
			t.Fatal(err)
		}
		if got := readSysctl(t, "net/ipv4/conf/fobgw0/rp_filter"); got != "2" {
			t.Errorf("rp_filter on fobgw0 = %s, want 2", got)
		}
		// Drift of a sysctl is repaired and counted.
		writeSysctl(t, "net/ipv4/conf/fobgw0/rp_filter", "1")
		if n, err := r.Repair(); err != nil || n != 1 {
			t.Errorf("Check after rp_filter drift = %d, %v; want 1", n, err)
		}
		if got := readSysctl(t, "net/ipv4/conf/fobgw0/rp_filter"); got != "2" {
			t.Errorf("rp_filter after Check = %s, want 2", got)
		}
	})
	t.Run("WithNetNS from a host thread", func(t *testing.T) {
		w := newWorld(t)
		r := w.router(t, storyConfig(), WithNetNS(w.ns))
		errc := make(chan error)
		go func() {
			// A fresh locked thread in the host namespace.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			err := netns.Set(w.host)
			if err == nil {
				err = r.Apply()
			}
			errc <- err
		}()
		if err := <-errc; err != nil {
			t.Fatalf("Apply from a host thread: %v", err)
		}
		if got := readSysctl(t, "net/ipv4/conf/fobgw0/rp_filter"); got != "2" {
			t.Errorf("rp_filter on fobgw0 in the namespace = %s, want 2", got)
		}
		if got := readSysctl(t, "net/ipv4/ip_forward"); got != "1" {
			t.Errorf("ip_forward in the namespace = %s, want 1", got)
		}
		// newWorld's cleanup asserts the host's values did not change.
	})
	t.Run("WithSysctlRoot", func(t *testing.T) {
		w := newWorld(t)
		dir := t.TempDir()
		for _, p := range []string{"net/ipv4/conf/fobgw0"} {
			if err := os.MkdirAll(dir+"/"+p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range []string{"net/ipv4/ip_forward", "net/ipv4/conf/fobgw0/rp_filter"} {
			if err := os.WriteFile(dir+"/"+p, []byte("0\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.router(t, storyConfig(), WithSysctlRoot(dir)).Apply(); err != nil {
			t.Fatal(err)
		}
		for p, want := range map[string]string{"net/ipv4/ip_forward": "1", "net/ipv4/conf/fobgw0/rp_filter": "2"} {
			b, err := os.ReadFile(dir + "/" + p)
			if err != nil || strings.TrimSpace(string(b)) != want {
				t.Errorf("%s = %q, %v; want %s", p, b, err, want)
			}
		}
		if got := readSysctl(t, "net/ipv4/ip_forward"); got != "0" {
			t.Errorf("real ip_forward = %s, want untouched 0", got)
		}
	})
}

func TestIPv6LAN(t *testing.T) {
	w := newWorld(t)
	cfg := storyConfig()
	cfg.LAN = pfx("192.168.86.0/24", "fd86::/64")
	cfg.HomeNetworks = pfx("192.168.88.0/24", "fd88::/64")
	r := w.router(t, cfg)
	if err := r.Apply(); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	assertOwned(t, w, append(slices.Clone(storyOwned),
		"route v6 table 100 ::/0 dev fobgw0 metric 100",
		"route v6 table 100 unreachable ::/0 metric 4000",
		"route v6 table 254 fd88::/64 dev fobgw0 metric 100",
		"route v6 table 254 unreachable fd88::/64 metric 4000",
		"rule v6 from fd86::/64 iif br0 lookup 100 pref 5200",
		"rule v6 from all iif br0 lookup 100 pref 5201",
	))
	if got := readSysctl(t, "net/ipv6/conf/all/forwarding"); got != "1" {
		t.Errorf("ipv6 forwarding = %s, want 1", got)
	}
	first := w.snapshot(t)
	if err := r.Apply(); err != nil {
		t.Fatal(err)
	}
	assertSnapshot(t, w, first, "v6: second Apply")
	if got := w.routeGet(t, "", "", "fd88::1"); got != "dev fobgw0" {
		t.Errorf("gateway -> fd88::1: %s, want dev fobgw0", got)
	}
	w.delTunnel(t)
	if got := w.routeGet(t, "", "", "fd88::1"); got != "unreachable" {
		t.Errorf("tunnel gone: gateway -> fd88::1: %s, want unreachable", got)
	}
	if err := r.Remove(false); err != nil {
		t.Fatal(err)
	}
	assertOwned(t, w, nil)
}

func TestCheckRepairsDrift(t *testing.T) {
	tests := []struct {
		name  string
		drift func(tb testing.TB, w *world)
		want  int
	}{
		{"nothing", func(testing.TB, *world) {}, 0},
		{"rule flushed", func(tb testing.TB, w *world) {
			delOwned(tb, w, func(s string) bool { return strings.HasPrefix(s, "rule") })
		}, 2},
		{"table flushed", func(tb testing.TB, w *world) {
			delOwned(tb, w, func(s string) bool { return strings.Contains(s, "table 100") })
		}, 2},
		{"everything flushed and forwarding off", func(tb testing.TB, w *world) {
			delOwned(tb, w, func(string) bool { return true })
			writeSysctl(tb, "net/ipv4/ip_forward", "0")
		}, 7},
		{"stale route of ours", func(tb testing.TB, w *world) {
			r := &netlink.Route{Table: 100, Dst: mustIPNet(tb, "10.66.0.0/16"), Type: unix.RTN_UNREACHABLE, Protocol: Protocol}
			if err := w.h.RouteAdd(r); err != nil {
				tb.Fatal(err)
			}
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			r := w.router(t, storyConfig())
			if err := r.Apply(); err != nil {
				t.Fatal(err)
			}
			want := w.snapshot(t)
			tt.drift(t, w)
			n, err := r.Repair()
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if n != tt.want {
				t.Errorf("Repair repaired %d items, want %d", n, tt.want)
			}
			assertSnapshot(t, w, want, "after Check")
			if n, err := r.Repair(); n != 0 || err != nil {
				t.Errorf("second Check = %d, %v; want 0", n, err)
			}
		})
	}
}

// delOwned deletes fobgw's entries whose world.owned form matches.
func delOwned(tb testing.TB, w *world, match func(string) bool) {
	tb.Helper()
	rules, err := w.h.RuleList(netlink.FAMILY_ALL)
	if err != nil {
		tb.Fatal(err)
	}
	for _, k := range rules {
		if k.Protocol == Protocol && match("rule") {
			if err := w.h.RuleDel(&k); err != nil {
				tb.Fatal(err)
			}
		}
	}
	routes, err := w.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: Protocol}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		tb.Fatal(err)
	}
	for _, k := range routes {
		if match(w.routeString(k, false)) {
			if err := w.h.RouteDel(&k); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

func TestErrors(t *testing.T) {
	t.Run("no LAN interface", func(t *testing.T) {
		w := newWorld(t)
		cfg := storyConfig()
		cfg.LANInterface = "br9"
		err := w.router(t, cfg).Apply()
		if !errors.Is(err, ErrNoInterface) {
			t.Fatalf("Apply: %v, want ErrNoInterface", err)
		}
		t.Logf("the error reads: %v", err)
		for _, s := range []string{`"br9"`, "create the bridge first", "kill switch is in place"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not say %q", err, s)
			}
		}
		// The kill switch went in anyway.
		if got := w.routeGet(t, "", "", "192.168.88.1"); got != "unreachable" {
			t.Errorf("home route with no LAN interface: %s, want unreachable", got)
		}
	})
	t.Run("no tunnel interface", func(t *testing.T) {
		w := newWorld(t)
		w.delTunnel(t)
		err := w.router(t, storyConfig()).Apply()
		if !errors.Is(err, ErrNoInterface) || !strings.Contains(err.Error(), `tunnel interface "fobgw0" does not exist`) {
			t.Fatalf("Apply: %v, want ErrNoInterface naming the tunnel", err)
		}
		t.Logf("the error reads: %v", err)
		if got := w.routeGet(t, "br0", "192.168.86.254", "203.0.113.80"); got != "unreachable" {
			t.Errorf("LAN with no tunnel: %s, want unreachable", got)
		}
	})
	t.Run("tunnel interface down", func(t *testing.T) {
		w := newWorld(t)
		tun, err := w.h.LinkByName("fobgw0")
		if err != nil {
			t.Fatal(err)
		}
		if err := w.h.LinkSetDown(tun); err != nil {
			t.Fatal(err)
		}
		err = w.router(t, storyConfig()).Apply()
		if !errors.Is(err, unix.ENETDOWN) || !strings.Contains(err.Error(), "ip link set fobgw0 up") {
			t.Fatalf("Apply: %v, want ENETDOWN saying to set fobgw0 up", err)
		}
		t.Logf("the error reads: %v", err)
	})
	t.Run("permission denied", func(t *testing.T) {
		w := newWorld(t)
		base := w.snapshot(t)
		errc := make(chan error)
		go func() {
			// This thread loses CAP_NET_ADMIN for good; it stays locked
			// and dies with the goroutine.
			runtime.LockOSThread()
			errc <- func() error {
				if err := netns.Set(w.ns); err != nil {
					return fmt.Errorf("enter test namespace: %w", err)
				}
				if err := dropNetAdmin(); err != nil {
					return fmt.Errorf("drop CAP_NET_ADMIN: %w", err)
				}
				h, err := netlink.NewHandle()
				if err != nil {
					return fmt.Errorf("handle: %w", err)
				}
				defer h.Close()
				r, err := New(h, storyConfig())
				if err != nil {
					return err
				}
				return r.Apply()
			}()
		}()
		err := <-errc
		if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "run fobgw as root or with CAP_NET_ADMIN") {
			t.Fatalf("Apply without CAP_NET_ADMIN: %v, want a permission error saying what to do", err)
		}
		t.Logf("the error reads: %v", err)
		assertSnapshot(t, w, base, "after the failed Apply")
	})
}

func dropNetAdmin() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	data[0].Effective &^= 1 << unix.CAP_NET_ADMIN
	data[0].Permitted &^= 1 << unix.CAP_NET_ADMIN
	return unix.Capset(&hdr, &data[0])
}

func mustIPNet(tb testing.TB, s string) *net.IPNet {
	tb.Helper()
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// TestBypassRule: marked LAN packets take the main table (the WAN),
// unmarked ones the tunnel or, with it gone, the kill switch; a marked
// packet that main cannot route falls to the kill switch, never further.
// The rule is repaired like the others, kept by Remove(true) and taken by
// Remove(false).
func TestBypassRule(t *testing.T) {
	const mark = 0x1000000
	w := newWorld(t)
	cfg := storyConfig()
	cfg.LAN = pfx("192.168.86.0/24", "fd86::/64")
	cfg.BypassMark = mark
	r := w.router(t, cfg)
	if err := r.Apply(); err != nil {
		t.Fatal(err)
	}
	rules := []string{
		"rule v4 from 192.168.86.0/24 iif br0 fwmark 0x1000000/0x1000000 lookup 254 pref 5199",
		"rule v4 from 192.168.86.0/24 iif br0 lookup 100 pref 5200",
		"rule v4 from all iif br0 lookup 100 pref 5201",
		"rule v6 from fd86::/64 iif br0 fwmark 0x1000000/0x1000000 lookup 254 pref 5199",
		"rule v6 from fd86::/64 iif br0 lookup 100 pref 5200",
		"rule v6 from all iif br0 lookup 100 pref 5201",
	}
	var owned []string
	for _, s := range w.owned(t) {
		if strings.HasPrefix(s, "rule") {
			owned = append(owned, s)
		}
	}
	if d := diff(owned, rules); d != "" {
		t.Errorf("rules after Apply:\n%s", d)
	}
	for _, tc := range []struct {
		src, dst string
		mark     uint32
		want     string
	}{
		{"192.168.86.254", "203.0.113.80", 0, "dev fobgw0"},
		{"192.168.86.254", "203.0.113.80", mark, "dev wan0"},
		{"192.168.86.254", "203.0.113.80", mark | 0x5, "dev wan0"}, // other bits are others'
		{"192.168.86.254", "203.0.113.80", 0x2000000, "dev fobgw0"},
		{"192.168.86.254", "192.168.88.1", mark, "dev fobgw0"}, // main's home route: the tunnel
	} {
		if got := w.routeGetMarked(t, "br0", tc.src, tc.dst, tc.mark); got != tc.want {
			t.Errorf("%s -> %s mark %#x: %s, want %s", tc.src, tc.dst, tc.mark, got, tc.want)
		}
	}
	before := w.snapshot(t)
	delOwned(t, w, func(s string) bool { return s == "rule" })
	if n, err := r.Repair(); err != nil || n != 6 {
		t.Errorf("Repair after the rules went = %d, %v; want 6", n, err)
	}
	assertSnapshot(t, w, before, "after Repair")

	w.delTunnel(t) // the process crashed
	if err := r.Remove(true); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mark uint32
		want string
	}{{0, "unreachable"}, {mark, "dev wan0"}} {
		if got := w.routeGetMarked(t, "br0", "192.168.86.254", "203.0.113.80", tc.mark); got != tc.want {
			t.Errorf("after Remove(true), mark %#x: %s, want %s", tc.mark, got, tc.want)
		}
	}
	// Main without a default: a marked packet meets the kill switch.
	wanDefault := &netlink.Route{LinkIndex: w.wan.Attrs().Index, Gw: net.ParseIP("192.168.2.1")}
	if err := w.h.RouteDel(wanDefault); err != nil {
		t.Fatal(err)
	}
	if got := w.routeGetMarked(t, "br0", "192.168.86.254", "203.0.113.80", mark); got != "unreachable" {
		t.Errorf("marked, main without a default: %s, want unreachable", got)
	}
	if err := w.h.RouteAdd(wanDefault); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(false); err != nil {
		t.Fatal(err)
	}
	// (IPv6 forwarding adds the kernel's anycast routes: compare fobgw's.)
	assertOwned(t, w, nil)
}
