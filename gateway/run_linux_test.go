package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fobgw/fobgw/config"
	"github.com/fobgw/fobgw/health/healthtest"
	"github.com/fobgw/fobgw/internal/netaddr"
	"github.com/fobgw/fobgw/internal/nstest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

// TestRunKernel runs the whole gateway (Run, Down) against the kernel.
//
// It runs in a child process started in a fresh network namespace
// (CLONE_NEWNET) rather than on a thread switched with netns.New: Run's
// goroutines (wireguard-go's sockets, policyroute's /proc/sys/net writes,
// the DNS forwarder) run on any OS thread, and only a whole process in the
// namespace guarantees that none of them touches the host's. The namespace
// disappears with the child, even if it crashes.
func TestRunKernel(t *testing.T) {
	if !nstest.InFreshNetns(t) {
		return
	}
	runKernelChild(t)
}

// kernelWorld is the child's namespace: lo, br0 192.168.86.1/24, and a
// home peer (wireguard-go on netstack, 10.1.200.1) over loopback.
type kernelWorld struct {
	h        *netlink.Handle
	name     string
	cfgPath  string
	runDir   string
	homePub  config.Key
	fobKey   config.Key
	homePort uint16
	repair   time.Duration // Options.RepairInterval; 0: the default
}

// newKernelWorld makes the world; repl replaces further lines of the config
// ("" for none).
func newKernelWorld(t *testing.T, repl map[string]string) *kernelWorld {
	h, err := netlink.NewHandle()
	if err != nil {
		t.Fatalf("netlink: %v", err)
	}
	t.Cleanup(h.Close)
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0].Attrs().Name != "lo" {
		t.Fatalf("not in a fresh network namespace: links %v", links)
	}
	if err := h.LinkSetUp(links[0]); err != nil {
		t.Fatalf("lo up: %v", err)
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}} // dummy is not built into every kernel
	if err := h.LinkAdd(br); err != nil {
		t.Fatalf("add br0: %v", err)
	}
	if err := h.AddrAdd(br, &netlink.Addr{IPNet: netaddr.IPNet(netip.MustParsePrefix("192.168.86.1/24"))}); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}

	w := &kernelWorld{h: h, name: fmt.Sprintf("fgwt%d", os.Getpid()%100000), runDir: t.TempDir(), homePort: freeUDPPort(t)}
	t.Cleanup(func() { os.Remove(UAPIDir + "/" + w.name + ".sock") })
	homeKey, _ := config.GenerateKey()
	w.fobKey, _ = config.GenerateKey()
	w.homePub = homeKey.PublicKey()
	homeTun, _, err := netstack.CreateNetTUN([]netip.Addr{netip.MustParseAddr("10.1.200.1"), netip.MustParseAddr("192.168.88.1")}, nil, 1420)
	if err != nil {
		t.Fatal(err)
	}
	startDevice(t, homeTun, fmt.Sprintf("private_key=%s\nlisten_port=%d\npublic_key=%s\nallowed_ip=10.1.200.2/32\nallowed_ip=192.168.86.0/24\n",
		homeKey.Hex(), w.homePort, w.fobKey.PublicKey().Hex()), "home")

	lines := map[string]string{
		"Name = fobgw0": "Name = " + w.name,
		"PrivateKeyFile = /var/lib/fobgw/private.key":              "PrivateKey = " + w.fobKey.String(),
		"ListenPort = 13231":                                       fmt.Sprintf("ListenPort = %d", freeUDPPort(t)),
		"PublicKey = If7ysNHrNZ2PmoVW1ckVL1FQApOBPORTAWgAq82zXSA=": "PublicKey = " + w.homePub.String(),
		"Endpoint = home.example.net:13231":                        fmt.Sprintf("Endpoint = 127.0.0.1:%d", w.homePort),
		"Resolver = 192.168.2.1":                                   "Probe = 10.1.200.1",
		"PersistentKeepalive = 25":                                 "PersistentKeepalive = 1",
	}
	for old, r := range repl {
		lines[old] = r
	}
	text := baseConfig
	for old, r := range lines {
		if !strings.Contains(text, old) {
			t.Fatalf("baseConfig lacks %q", old)
		}
		text = strings.Replace(text, old, r, 1)
	}
	text = strings.ReplaceAll(text, "%HOMEPORT%", fmt.Sprint(w.homePort))
	w.cfgPath = filepath.Join(t.TempDir(), "fobgw.conf")
	if err := os.WriteFile(w.cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *kernelWorld) config(t *testing.T) *config.Config {
	c, err := config.LoadConfig(w.cfgPath, config.LoadOptions{ResolvConf: "/nonexistent"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// start runs Run in the background; stop cancels it and returns its error.
func (w *kernelWorld) start(t *testing.T, cfg *config.Config) (stop func() error, ready bool, runErr error) {
	ctx, cancel := context.WithCancel(context.Background())
	readyC := make(chan struct{})
	errC := make(chan error, 1)
	go func() {
		errC <- Run(ctx, cfg, Options{Logger: testLogger(t), RunDir: w.runDir, OnReady: func() { close(readyC) }, LANWait: time.Second,
			RepairInterval: w.repair})
	}()
	select {
	case <-readyC:
		return func() error { cancel(); return <-errC }, true, nil
	case err := <-errC:
		cancel()
		return nil, false, err
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("Run neither ready nor failed after 30 s")
	}
	return nil, false, nil
}

func (w *kernelWorld) rulesToTable(t *testing.T, table int) int {
	rules, err := w.h.RuleList(netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rules {
		if r.Table == table {
			n++
		}
	}
	return n
}

// routes returns the table's routes as "unreachable" or the device name.
func (w *kernelWorld) routes(t *testing.T, table int) []string {
	rs, err := w.h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		if r.Type == unix.RTN_UNREACHABLE {
			out = append(out, "unreachable")
			continue
		}
		l, err := w.h.LinkByIndex(r.LinkIndex)
		if err == nil {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

func (w *kernelWorld) linkExists(t *testing.T) bool {
	_, err := w.h.LinkByName(w.name)
	var nf netlink.LinkNotFoundError
	if err != nil && !errors.As(err, &nf) {
		t.Fatal(err)
	}
	return err == nil
}

// uapiGet speaks wireguard's UAPI on the socket, as `wg show` does.
func uapiGet(name string) (string, error) {
	c, err := net.DialTimeout("unix", UAPIDir+"/"+name+".sock", 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "get=1\n\n"); err != nil {
		return "", err
	}
	var b strings.Builder
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if sc.Text() == "" {
			break
		}
		b.WriteString(sc.Text() + "\n")
	}
	return b.String(), sc.Err()
}

func runKernelChild(t *testing.T) {
	w := newKernelWorld(t, nil)
	cfg := w.config(t)
	table := cfg.Table

	// A leftover of a crashed run: a persistent TUN with the name, a stale
	// UAPI socket and a stale control socket.
	stale := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: w.name}, Mode: netlink.TUNTAP_MODE_TUN, Flags: netlink.TUNTAP_DEFAULTS}
	if err := w.h.LinkAdd(stale); err != nil {
		t.Fatalf("make a stale TUN: %v", err)
	}
	for _, p := range []string{UAPIDir + "/" + w.name + ".sock", ControlSocket(w.runDir, w.name)} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		l.Close()
	}

	stop, ok, err := w.start(t, cfg)
	if !ok {
		t.Fatalf("Run over a crashed run's leftovers: %v", err)
	}

	// The TUN with its address, up.
	link, err := w.h.LinkByName(w.name)
	if err != nil {
		t.Fatalf("TUN %s missing: %v", w.name, err)
	}
	if link.Type() != "tuntap" || link.Attrs().MTU != 1420 || link.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("TUN %s: type %s mtu %d flags %v", w.name, link.Type(), link.Attrs().MTU, link.Attrs().Flags)
	}
	addrs, _ := w.h.AddrList(link, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IPNet.String() != "10.1.200.2/24" {
		t.Errorf("TUN addresses %v, want 10.1.200.2/24", addrs)
	}
	// The rules (the LAN's, and every other source on the LAN interface) and
	// the routes.
	if n := w.rulesToTable(t, table); n != 2 {
		t.Errorf("%d rules to table %d, want 2", n, table)
	}
	if got := strings.Join(w.routes(t, table), ","); !strings.Contains(got, w.name) || !strings.Contains(got, "unreachable") {
		t.Errorf("table %d routes [%s], want the tunnel default and the unreachable default", table, got)
	}
	// wg show: the UAPI socket answers with our peer.
	get, err := uapiGet(w.name)
	if err != nil || !strings.Contains(get, "public_key="+w.homePub.Hex()) || !strings.Contains(get, "errno=0") {
		t.Errorf("UAPI get: %v\n%s", err, get)
	}
	if wg, err := exec.LookPath("wg"); err == nil {
		out, err := exec.Command(wg, "show", w.name).CombinedOutput()
		if err != nil || !strings.Contains(string(out), w.homePub.String()) {
			t.Errorf("wg show %s: %v\n%s", w.name, err, out)
		}
	}
	// The status socket, and the tunnel comes up (handshake with home).
	deadline := time.Now().Add(15 * time.Second)
	var st *Status
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err = ReadStatus(ctx, ControlSocket(w.runDir, w.name))
		cancel()
		if err != nil {
			t.Fatalf("status socket: %v", err)
		}
		if st.TunnelUp && st.Probes > 0 || time.Now().After(deadline) {
			break
		}
		// Polled: the handshake is between two real devices in real time,
		// and the status socket answers questions, it pushes nothing.
		time.Sleep(200 * time.Millisecond)
	}
	if !st.TunnelUp || st.Name != w.name || !st.Clamp.Enabled || st.RxBytes == 0 {
		t.Errorf("status %+v, want the tunnel up with traffic", st)
	}
	t.Logf("status: up %v, endpoint %s, probes %d (missed %d), rx %d", st.TunnelUp, st.Endpoint, st.Probes, st.ProbeMissesTotal, st.RxBytes)
	// Metrics.
	resp, err := http.Get("http://127.0.0.1:9636/metrics")
	if err != nil {
		t.Errorf("metrics: %v", err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, m := range []string{"fobgw_tunnel_up 1", "fobgw_receive_bytes_total", "fobgw_route_repairs_total 0", "go_goroutines"} {
			if !strings.Contains(string(body), m) {
				t.Errorf("metrics lack %q", m)
			}
		}
	}
	// A second instance is refused and changes nothing.
	if _, ok, err := w.start(t, cfg); ok || err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second instance: ready %v, err %v", ok, err)
	}
	// Stop: the kill switch stays, the tunnel goes.
	if err := stop(); err != nil {
		t.Errorf("Run returned %v after cancel", err)
	}
	if w.linkExists(t) {
		t.Errorf("TUN %s still there after stop", w.name)
	}
	if got := w.routes(t, table); len(got) != 1 || got[0] != "unreachable" {
		t.Errorf("after stop table %d holds %v, want only the unreachable default (kill switch)", table, got)
	}
	if n := w.rulesToTable(t, table); n != 2 {
		t.Errorf("after stop %d rules to table %d, want 2 (kill switch)", n, table)
	}
	for _, p := range []string{UAPIDir + "/" + w.name + ".sock", ControlSocket(w.runDir, w.name)} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left after stop", p)
		}
	}

	// A start that fails half way (DNSListen taken) undoes all but the kill switch.
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(192, 168, 86, 1), Port: 53})
	if err != nil {
		t.Fatal(err)
	}
	_, ok, err = w.start(t, cfg)
	busy.Close()
	if ok || err == nil {
		t.Fatalf("Run with DNSListen taken: ready %v, err %v", ok, err)
	}
	t.Logf("failed start: %v", err)
	if w.linkExists(t) {
		t.Errorf("TUN left after a failed start")
	}
	if got := w.routes(t, table); len(got) != 1 || got[0] != "unreachable" {
		t.Errorf("after a failed start table %d holds %v, want only the kill switch", table, got)
	}
	if _, err := os.Stat(UAPIDir + "/" + w.name + ".sock"); err == nil {
		t.Errorf("UAPI socket left after a failed start")
	}

	// down removes everything.
	if err := Down(cfg, Options{Logger: testLogger(t), RunDir: w.runDir}); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if got := w.routes(t, table); len(got) != 0 {
		t.Errorf("after down table %d holds %v", table, got)
	}
	if n := w.rulesToTable(t, table); n != 0 {
		t.Errorf("after down %d rules to table %d", n, table)
	}
}

func TestRunKernelRepairsDrift(t *testing.T) {
	if !nstest.InFreshNetns(t) {
		return
	}
	w := newKernelWorld(t, nil)
	w.repair = 100 * time.Millisecond // not the 10 s of RepairInterval
	cfg := w.config(t)
	stop, ok, err := w.start(t, cfg)
	if !ok {
		t.Fatal(err)
	}
	defer stop()
	rules, _ := w.h.RuleList(netlink.FAMILY_V4)
	for _, r := range rules {
		if r.Table == cfg.Table {
			if err := w.h.RuleDel(&r); err != nil {
				t.Fatal(err)
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.rulesToTable(t, cfg.Table) < 2 && time.Now().Before(deadline) {
		// Polled: the netlink package has no notification of rule changes
		// to wait on, and the repair is the gateway's, not an event of ours.
		time.Sleep(50 * time.Millisecond)
	}
	if w.rulesToTable(t, cfg.Table) != 2 {
		t.Fatalf("deleted rules not repaired within 10 s (repair every %v)", w.repair)
	}
	// The repair puts the rule back, then counts it: the rule can be seen
	// a moment before the count, so the count is waited for too.
	var st *Status
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err = ReadStatus(ctx, ControlSocket(w.runDir, w.name))
		cancel()
		if err == nil && st.RouteRepairs > 0 || time.Now().After(deadline) {
			break
		}
		// Polled: the status socket answers questions, it pushes nothing.
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || st.RouteRepairs == 0 {
		t.Errorf("status after repair: %+v, %v", st, err)
	}
}

// TestRunKernelEndpointMoves is the bar of issue 5: the home router's
// public address changes and its DNS record follows; the tunnel (and so
// the LAN) is through again within 30 s. Home's "public" addresses are
// 198.51.100.2 and .3 on lo; the local ISP's resolver is a DNS server on
// 127.0.0.1 with TTL 1.
func TestRunKernelEndpointMoves(t *testing.T) {
	if !nstest.InFreshNetns(t) {
		return
	}
	h, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	h.LinkSetUp(lo)
	old, moved := netip.MustParsePrefix("198.51.100.2/32"), netip.MustParsePrefix("198.51.100.3/32")
	if err := h.AddrAdd(lo, &netlink.Addr{IPNet: netaddr.IPNet(old)}); err != nil {
		t.Fatal(err)
	}
	dnsSrv := healthtest.StartDNS(t, "127.0.0.1:0")
	dnsSrv.Set("home.example.net", old.Addr())
	w := newKernelWorld(t, map[string]string{
		"Endpoint = home.example.net:13231": "Endpoint = home.example.net:%HOMEPORT%",
		"Resolver = 192.168.2.1":            "Resolver = " + dnsSrv.Addr().String() + "\nProbe = 10.1.200.1",
	})
	cfg := w.config(t)
	stop, ok, err := w.start(t, cfg)
	if !ok {
		t.Fatal(err)
	}
	defer stop()
	status := func() *Status {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := ReadStatus(ctx, ControlSocket(w.runDir, w.name))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	waitUp := func(since time.Time, limit time.Duration) (*Status, time.Duration) {
		for {
			st := status()
			if !st.LastHandshake.IsZero() && st.LastProbeOK.After(since) {
				return st, time.Since(since)
			}
			if time.Since(since) > limit {
				t.Fatalf("tunnel not up %v after %v: %+v", limit, since, st)
			}
			// Polled: real devices, real DNS, real time; the status
			// socket pushes nothing.
			time.Sleep(100 * time.Millisecond)
		}
	}
	st, took := waitUp(time.Now().Add(-time.Second), 20*time.Second)
	if st.Endpoint != netip.AddrPortFrom(old.Addr(), w.homePort).String() || st.EndpointName != "home.example.net" {
		t.Fatalf("endpoint %s from %q", st.Endpoint, st.EndpointName)
	}
	t.Logf("up through %s after %v", st.Endpoint, took)

	// Home moves; the record follows at once.
	movedAt := time.Now()
	if err := h.AddrAdd(lo, &netlink.Addr{IPNet: netaddr.IPNet(moved)}); err != nil {
		t.Fatal(err)
	}
	if err := h.AddrDel(lo, &netlink.Addr{IPNet: netaddr.IPNet(old)}); err != nil {
		t.Fatal(err)
	}
	dnsSrv.Set("home.example.net", moved.Addr())
	st, took = waitUp(movedAt, 30*time.Second)
	if st.Endpoint != netip.AddrPortFrom(moved.Addr(), w.homePort).String() {
		t.Errorf("endpoint %s after the move, want %v", st.Endpoint, moved.Addr())
	}
	t.Logf("through again %v after the move (bar: 30 s): endpoint %s, misses %d, changes %d", took, st.Endpoint, st.ProbeMissesTotal, st.EndpointChanges)
}

// TestRunKernelLANAndSysctls: a LANInterface that does not exist (a typo)
// or does not hold DNSListen's address is a *ConfigError from check and
// run, before anything changes; with KillSwitch = off the forwarding
// sysctl goes back to its previous value after a failed start and after a
// stop (with KillSwitch = on it stays: the kill switch guards the LAN).
func TestRunKernelLANAndSysctls(t *testing.T) {
	if !nstest.InFreshNetns(t) {
		return
	}
	const fwd = "/proc/sys/net/ipv4/ip_forward"
	// This is the child's own, fresh namespace (see TestRunKernel).
	setForward := func(v string) {
		if err := os.WriteFile(fwd, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	forward := func() string {
		b, err := os.ReadFile(fwd)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	w := newKernelWorld(t, map[string]string{"KillSwitch = on": "KillSwitch = off"})
	good := w.config(t)
	table := good.Table
	lan1 := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "lan1"}} // exists, without the address
	if err := w.h.LinkAdd(lan1); err != nil {
		t.Fatal(err)
	}
	setForward("0")

	for _, tt := range []struct{ name, lanIf, want string }{
		{"typo", "br1", `interface "br1" does not exist (192.168.86.1 is on br0)`},
		{"without the address", "lan1", `interface "lan1" does not hold DNSListen's address 192.168.86.1 (192.168.86.1 is on br0)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := *good
			cfg.LANInterface = tt.lanIf
			var b strings.Builder
			err := Check(&cfg, Options{RunDir: w.runDir}, &b)
			var ce *config.ConfigError
			if !errors.As(err, &ce) || ce.Key != "LANInterface" || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("check: %v; want a *config.ConfigError for LANInterface saying %q", err, tt.want)
			}
			_, ok, err := w.start(t, &cfg)
			if ok || !errors.As(err, &ce) || ce.Key != "LANInterface" || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run: ready %v, %v; want a *config.ConfigError for LANInterface saying %q", ok, err, tt.want)
			}
			if n := w.rulesToTable(t, table); n != 0 {
				t.Errorf("%d rules to table %d left", n, table)
			}
			if got := w.routes(t, table); len(got) != 0 {
				t.Errorf("table %d holds %v", table, got)
			}
			if w.linkExists(t) {
				t.Errorf("TUN created")
			}
			if v := forward(); v != "0" {
				t.Errorf("ip_forward = %s, want 0 (untouched)", v)
			}
		})
	}
	if err := Check(good, Options{RunDir: w.runDir}, io.Discard); err != nil {
		t.Errorf("check of the good config: %v", err)
	}

	// KillSwitch = off: a failed start (DNSListen taken) restores ip_forward.
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(192, 168, 86, 1), Port: 53})
	if err != nil {
		t.Fatal(err)
	}
	_, ok, err := w.start(t, good)
	busy.Close()
	if ok || err == nil {
		t.Fatalf("Run with DNSListen taken: ready %v, err %v", ok, err)
	}
	if v := forward(); v != "0" {
		t.Errorf("after a failed start with KillSwitch = off ip_forward = %s, want 0 (as before)", v)
	}
	if n := w.rulesToTable(t, table); n != 0 {
		t.Errorf("after a failed start with KillSwitch = off %d rules to table %d", n, table)
	}
	// A run turns it on, a stop restores it.
	stop, ok, err := w.start(t, good)
	if !ok {
		t.Fatal(err)
	}
	if v := forward(); v != "1" {
		t.Errorf("while running ip_forward = %s, want 1", v)
	}
	if err := stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if v := forward(); v != "0" {
		t.Errorf("after a stop with KillSwitch = off ip_forward = %s, want 0 (as before)", v)
	}
	// A value set before fobgw is kept.
	setForward("1")
	stop, ok, err = w.start(t, good)
	if !ok {
		t.Fatal(err)
	}
	stop()
	if v := forward(); v != "1" {
		t.Errorf("ip_forward was 1 before fobgw, is %s after", v)
	}

	// KillSwitch = on: the kill switch guards the LAN, forwarding stays on.
	setForward("0")
	on := *good
	on.KillSwitch = true
	stop, ok, err = w.start(t, &on)
	if !ok {
		t.Fatal(err)
	}
	stop()
	if v := forward(); v != "1" {
		t.Errorf("after a stop with KillSwitch = on ip_forward = %s, want 1 (the kill switch guards the LAN)", v)
	}
	if got := w.routes(t, table); len(got) != 1 || got[0] != "unreachable" {
		t.Errorf("after a stop with KillSwitch = on table %d holds %v, want the kill switch", table, got)
	}
	if err := Down(&on, Options{Logger: testLogger(t), RunDir: w.runDir}); err != nil {
		t.Errorf("Down: %v", err)
	}
}

// TestRunKernelLANLate: at boot the LAN bridge may get its address after
// fobgw starts; Run waits for it (Options.LANWait) instead of failing, and
// changes nothing while it waits.
func TestRunKernelLANLate(t *testing.T) {
	if !nstest.InFreshNetns(t) {
		return
	}
	w := newKernelWorld(t, nil)
	cfg := w.config(t)
	br, err := w.h.LinkByName("br0")
	if err != nil {
		t.Fatal(err)
	}
	lanAddr := &netlink.Addr{IPNet: netaddr.IPNet(netip.MustParsePrefix("192.168.86.1/24"))}
	if err := w.h.AddrDel(br, lanAddr); err != nil {
		t.Fatal(err)
	}
	readyC, waiting, errC, cancel := w.runWatching(t, cfg, "waiting for the LAN interface", 20*time.Second)
	defer cancel()
	select {
	case <-waiting:
	case err := <-errC:
		t.Fatalf("Run did not wait for the LAN: %v", err)
	}
	if n := w.rulesToTable(t, cfg.Table); n != 0 || w.linkExists(t) {
		t.Errorf("while waiting for the LAN: %d rules to table %d, TUN exists %v; want nothing changed", n, cfg.Table, w.linkExists(t))
	}
	if err := w.h.AddrAdd(br, lanAddr); err != nil {
		t.Fatal(err)
	}
	awaitReady(t, readyC, errC, "after the LAN address came within LANWait")
	cancel()
	if err := <-errC; err != nil {
		t.Errorf("stop: %v", err)
	}
	if err := Down(cfg, Options{Logger: testLogger(t), RunDir: w.runDir}); err != nil {
		t.Errorf("Down: %v", err)
	}
}

// runWatching runs Run in the background with the world's run directory and
// repair interval; ready is closed when Run is ready, errs gets its result,
// and seen is closed the first time msg is logged.
func (w *kernelWorld) runWatching(t *testing.T, cfg *config.Config, msg string, lanWait time.Duration) (ready, seen chan struct{}, errs chan error, cancel context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ready, seen, errs = make(chan struct{}), make(chan struct{}), make(chan error, 1)
	log := slog.New(&onMessage{Handler: testLogger(t).Handler(), msg: msg, c: seen})
	go func() {
		errs <- Run(ctx, cfg, Options{Logger: log, RunDir: w.runDir, OnReady: func() { close(ready) }, LANWait: lanWait, RepairInterval: w.repair})
	}()
	return ready, seen, errs, cancel
}

// awaitReady fails the test unless Run (started by runWatching) is ready
// within 30 s; when says in what situation.
func awaitReady(t *testing.T, ready chan struct{}, errs chan error, when string) {
	t.Helper()
	select {
	case <-ready:
	case err := <-errs:
		t.Fatalf("Run failed %s: %v", when, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("Run not ready 30 s %s", when)
	}
}

// onMessage is a slog handler that closes c when msg is logged, once.
type onMessage struct {
	slog.Handler
	msg  string
	c    chan struct{}
	once sync.Once
}

func (h *onMessage) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { close(h.c) })
	}
	return h.Handler.Handle(ctx, r)
}

// TestRunKernelHomeNetworkOnLink: the gateway starts on a local network that
// uses a home network's addresses (the hotel's Wi-Fi is 192.168.88.0/24, as
// home's LAN): no foreign-route error, no route of fobgw's for that network,
// so the gateway reaches the local one (its way out, the local resolver), and
// the log says why. Once the gateway leaves that network, the repair puts the
// home route back.
func TestRunKernelHomeNetworkOnLink(t *testing.T) {
	if !nstest.InFreshNetns(t) {
		return
	}
	w := newKernelWorld(t, nil)
	w.repair = 100 * time.Millisecond
	cfg := w.config(t)
	wan := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "wan0"}}
	if err := w.h.LinkAdd(wan); err != nil {
		t.Fatal(err)
	}
	local := &netlink.Addr{IPNet: netaddr.IPNet(netip.MustParsePrefix("192.168.88.23/24"))}
	if err := w.h.AddrAdd(wan, local); err != nil {
		t.Fatal(err)
	}
	if err := w.h.LinkSetUp(wan); err != nil {
		t.Fatal(err)
	}
	// The local network's resolver has an address of home's network (and
	// DNSUpstream's, 192.168.88.1): taken for the gateway's own lookups
	// while the gateway is on that network, refused once it is not.
	cfg.ResolvConf = filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(cfg.ResolvConf, []byte("nameserver 192.168.88.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var plan strings.Builder
	if err := Check(cfg, Options{}, &plan); err != nil {
		t.Fatalf("fobgw check on the local network: %v", err)
	}
	if !strings.Contains(plan.String(), "# HomeNetworks 192.168.88.0/24 is the local network now") {
		t.Errorf("fobgw check on the local network does not say that HomeNetworks is the local network:\n%s", plan.String())
	}
	lookups := resolvConfServers(cfg)
	if rs, err := lookups(); err != nil || len(rs) != 1 || rs[0].String() != "192.168.88.1:53" {
		t.Errorf("on the local network, before the gateway starts, its lookups go to %v, %v; want 192.168.88.1:53", rs, err)
	}
	readyC, warned, errC, cancel := w.runWatching(t, cfg, "a home network is also the local network: the gateway reaches these addresses there, not at home; the LAN still reaches home's through the tunnel", time.Second)
	defer cancel()
	awaitReady(t, readyC, errC, "on a local network with home's addresses")
	select {
	case <-warned:
	default:
		t.Error("no warning that a home network is the local network")
	}
	via := func() string {
		rs, err := w.h.RouteGet(net.ParseIP("192.168.88.1"))
		if err != nil {
			return err.Error()
		}
		l, err := w.h.LinkByIndex(rs[0].LinkIndex)
		if err != nil {
			return err.Error()
		}
		return l.Attrs().Name
	}
	if got := via(); got != "wan0" {
		t.Errorf("on the local network the gateway reaches 192.168.88.1 via %s, want wan0", got)
	}
	if rs, err := lookups(); err != nil || len(rs) != 1 || rs[0].String() != "192.168.88.1:53" {
		t.Errorf("on the local network the gateway's lookups go to %v, %v; want 192.168.88.1:53", rs, err)
	}
	// The repair's route comes as a netlink event: subscribed before the
	// address goes, so that it cannot be missed.
	routes, done := make(chan netlink.RouteUpdate, 64), make(chan struct{})
	defer close(done)
	if err := netlink.RouteSubscribe(routes, done); err != nil {
		t.Fatal(err)
	}
	if err := w.h.AddrDel(wan, local); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for via() != w.name {
		select {
		case <-routes:
		case <-timeout:
			t.Fatalf("home's route not back within 10 s of leaving the local network (repair every %v)", w.repair)
		}
	}
	if got := via(); got != w.name {
		t.Errorf("away from the local network the gateway reaches home's 192.168.88.1 via %s, want %s (the repair puts the home route back)", got, w.name)
	}
	if rs, err := lookups(); err == nil {
		t.Errorf("away from the local network the gateway's lookups go to %v; want home's 192.168.88.1 refused (it needs the tunnel)", rs)
	}
	cancel()
	if err := <-errC; err != nil {
		t.Errorf("stop: %v", err)
	}
	if err := Down(cfg, Options{Logger: testLogger(t), RunDir: w.runDir}); err != nil {
		t.Errorf("Down: %v", err)
	}
}
