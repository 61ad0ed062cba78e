package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fobgw/fobgw/config"
	"github.com/fobgw/fobgw/health"
	"github.com/fobgw/fobgw/pmtud"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// TestCheckShowsTheCeiling: `fobgw check` prints the configured ceiling and
// that the path is measured at run time; the home side gets the ceiling.
func TestCheckShowsTheCeiling(t *testing.T) {
	for _, tt := range []struct{ line, check, home string }{
		{"MTU = auto", "tun fobgw0 mtu auto (ceiling 1420, measured at run time)", "MTU = 1420\n"},
		{"MTU = 1400", "tun fobgw0 mtu 1400 (ceiling; the path measured at run time may lower it)", "MTU = 1400\n"},
	} {
		c, _ := storyConfig(t)
		c = mustParse(t, replaceLine(t, withLine(t, "PrivateKeyFile", "PrivateKeyFile = "+c.PrivateKeyFile), "MTU", tt.line))
		var b bytes.Buffer
		err := Check(c, Options{RunDir: t.TempDir()}, &b)
		var ce *config.ConfigError
		if err != nil && (!errors.As(err, &ce) || ce.Key != "LANInterface") {
			t.Fatalf("Check: %v", err)
		}
		if !strings.Contains(b.String(), tt.check) {
			t.Errorf("%s: check output lacks %q:\n%s", tt.line, tt.check, b.String())
		}
		b.Reset()
		if err := HomeConfig(c, FormatWGQuick, &b); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), tt.home) {
			t.Errorf("%s: home config lacks %q:\n%s", tt.line, tt.home, b.String())
		}
	}
}

// TestMTUStatus: status -json carries "mtu" with the Searcher's fields at
// its top level (bench/pathmtu_test.go reads them), text status and the
// metrics show ceiling, path and effective.
func TestMTUStatus(t *testing.T) {
	st := &Status{Name: "fobgw0", MTU: &MTUStatus{Status: pmtud.Status{Ceiling: 1420, Path: 1340, Effective: 1340, State: pmtud.StateOK, Probes: 9, Lost: 2, Changes: 1}}}
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"mtu":{"ceiling":1420,"path":1340,"effective":1340,"state":"ok"`} {
		if !strings.Contains(string(data), w) {
			t.Errorf("JSON lacks %s: %s", w, data)
		}
	}
	var b bytes.Buffer
	if err := st.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if w := "mtu:              effective 1340 (ceiling 1420, path 1340), ok; 9 probes, 2 lost, 1 changes\n"; !strings.Contains(b.String(), w) {
		t.Errorf("text lacks %q:\n%s", w, b.String())
	}
	c := newStatusCollector(func() *Status { return st })
	want := `
# HELP fobgw_mtu_ceiling_bytes The configured MTU, the ceiling of path MTU discovery.
# TYPE fobgw_mtu_ceiling_bytes gauge
fobgw_mtu_ceiling_bytes 1420
# HELP fobgw_mtu_effective_bytes The tunnel's MTU: min(ceiling, path).
# TYPE fobgw_mtu_effective_bytes gauge
fobgw_mtu_effective_bytes 1340
# HELP fobgw_mtu_path_bytes The largest inner packet seen to cross the tunnel both ways, up to the ceiling (0: not measured).
# TYPE fobgw_mtu_path_bytes gauge
fobgw_mtu_path_bytes 1340
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "fobgw_mtu_ceiling_bytes", "fobgw_mtu_path_bytes", "fobgw_mtu_effective_bytes"); err != nil {
		t.Error(err)
	}

	off := &pathMTU{ceiling: 1420, off: "the tunnel has no IPv4 address (probes are IPv4 only)"}
	st.MTU = off.status()
	b.Reset()
	st.WriteText(&b)
	if w := "mtu:              1420 (path MTU discovery off: the tunnel has no IPv4 address"; !strings.Contains(b.String(), w) {
		t.Errorf("text lacks %q:\n%s", w, b.String())
	}
	if data, _ := json.Marshal(st.MTU); !strings.Contains(string(data), `"effective":1420,"state":"off"`) || !strings.Contains(string(data), `"off":"the tunnel has no IPv4`) {
		t.Errorf("JSON of discovery off: %s", data)
	}
	var nilP *pathMTU
	if nilP.status() != nil {
		t.Errorf("no tunnel: status not nil")
	}
	nilP.trigger() // no tunnel: nothing to trigger, no panic
	nilP.close()
}

type fakeMeasurer struct{ endpoint, triggers int }

func (m *fakeMeasurer) endpointSet() { m.endpoint++ }
func (m *fakeMeasurer) trigger()     { m.triggers++ }

// TestRemeasure: a search round is asked for at every endpoint set, when
// the healer's probes start missing, when they are answered again, and when
// the underlay changes; not at every probe.
func TestRemeasure(t *testing.T) {
	m := &fakeMeasurer{}
	r := newRemeasure(m)
	r.observe(health.EndpointSet)
	if m.endpoint != 1 || m.triggers != 1 {
		t.Fatalf("after the first endpoint: %+v", m)
	}
	var got []int
	for _, e := range []health.Event{health.ProbeAnswered, health.ProbeAnswered, health.ProbeMissed, health.ProbeMissed,
		health.ProbeMissed, health.ProbeAnswered, health.ProbeAnswered, health.ProbeMissed} {
		r.observe(e)
		got = append(got, m.triggers-1)
	}
	if want := []int{0, 0, 1, 1, 1, 2, 2, 3}; !equalInts(got, want) {
		t.Errorf("triggers after each probe %v, want %v", got, want)
	}
	r.observe(health.EndpointSet)
	r.underlayChanged()
	if m.endpoint != 2 || m.triggers != 6 {
		t.Errorf("after another endpoint and an underlay change: %+v, want 2 endpoints and 6 triggers", m)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestUnderlayChanges: which netlink updates ask for a search round.
func TestUnderlayChanges(t *testing.T) {
	link := func(typ uint16, name string, index, mtu int, change, flags uint32) netlink.LinkUpdate {
		return netlink.LinkUpdate{
			IfInfomsg: nl.IfInfomsg{IfInfomsg: unix.IfInfomsg{Index: int32(index), Change: change, Flags: flags}},
			Header:    unix.NlMsghdr{Type: typ},
			Link:      &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: name, Index: index, MTU: mtu}},
		}
	}
	mtus := map[int]int{}
	steps := []struct {
		u    netlink.LinkUpdate
		want bool
	}{
		{link(unix.RTM_NEWLINK, "wan0", 2, 1500, 0, unix.IFF_UP), false},           // first sight
		{link(unix.RTM_NEWLINK, "wan0", 2, 1500, 0, unix.IFF_UP), false},           // nothing new
		{link(unix.RTM_NEWLINK, "wan0", 2, 1492, 0, unix.IFF_UP), true},            // MTU changed
		{link(unix.RTM_NEWLINK, "fobgw0", 5, 1420, 0, unix.IFF_UP), false},         // the tunnel itself
		{link(unix.RTM_NEWLINK, "fobgw0", 5, 1340, 0, unix.IFF_UP), false},         // ... whose MTU we set
		{link(unix.RTM_NEWLINK, "wwan0", 3, 1500, unix.IFF_UP, unix.IFF_UP), true}, // came up
		{link(unix.RTM_NEWLINK, "wwan0", 3, 1500, unix.IFF_UP, 0), false},          // went down
		{link(unix.RTM_DELLINK, "wan0", 2, 1492, 0, 0), false},                     // gone
		{link(unix.RTM_NEWLINK, "wan0", 2, 1400, 0, unix.IFF_UP), false},           // back: first sight again
	}
	for i, s := range steps {
		if got := underlayLinkChanged(mtus, "fobgw0", s.u); got != s.want {
			t.Errorf("link step %d (%s mtu %d): %v, want %v", i, s.u.Attrs().Name, s.u.Attrs().MTU, got, s.want)
		}
	}
	_, lan, _ := net.ParseCIDR("192.168.86.0/24")
	_, any4, _ := net.ParseCIDR("0.0.0.0/0")
	for _, tt := range []struct {
		r    netlink.Route
		want bool
	}{
		{netlink.Route{Table: unix.RT_TABLE_MAIN}, true},            // default, Dst nil
		{netlink.Route{Table: unix.RT_TABLE_MAIN, Dst: any4}, true}, // default, spelled out
		{netlink.Route{Table: unix.RT_TABLE_MAIN, Dst: lan}, false}, // a LAN route
		{netlink.Route{Table: 100}, false},                          // the LAN's table (the tunnel)
	} {
		if got := underlayRouteChanged(netlink.RouteUpdate{Route: tt.r}); got != tt.want {
			t.Errorf("route %v table %d: %v, want %v", tt.r.Dst, tt.r.Table, got, tt.want)
		}
	}
}

type countProber struct{ n atomic.Int32 }

func (c *countProber) Probe(ctx context.Context, size int, timeout time.Duration) error {
	c.n.Add(1)
	return pmtud.ErrLost
}

// TestPathMTUWaitsForTheEndpoint: no probe and no underlay watch before
// the peer has an endpoint (a probe would hold the first handshake back by
// 5 s), both once it has. Fake time (synctest): the Searcher's rounds pass
// without waiting.
func TestPathMTUWaitsForTheEndpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cp := &countProber{}
		p := &pathMTU{name: "fobgwtest0", hasEndpoint: make(chan struct{}), log: slog.New(slog.DiscardHandler),
			search: pmtud.NewSearcher(pmtud.Config{Ceiling: 1420, Timeout: 10 * time.Millisecond}, cp)}
		ctx, cancel := context.WithCancel(context.Background())
		var watching atomic.Bool
		done := make(chan struct{})
		go func() {
			p.run(ctx, func(ctx context.Context) { watching.Store(true); <-ctx.Done() })
			close(done)
		}()
		time.Sleep(time.Minute) // fake time: a minute without an endpoint
		synctest.Wait()
		if n := cp.n.Load(); n != 0 || watching.Load() {
			t.Fatalf("%d probes, watching %v, before the endpoint was set", n, watching.Load())
		}
		p.endpointSet()
		p.endpointSet() // twice is fine
		synctest.Wait()
		if cp.n.Load() == 0 || !watching.Load() {
			t.Errorf("%d probes, watching %v, after the endpoint was set", cp.n.Load(), watching.Load())
		}
		cancel()
		<-done
	})
}
