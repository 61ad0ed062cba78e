package pmtud

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fobgw/fobgw/internal/nstest"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// TestKernelPath probes through two real wireguard-go devices on kernel
// TUNs, the FOB's wrapped by a Device, the home side answered by the Linux
// kernel, over a veth link whose nftables rules drop outer datagrams above a
// size, silently (no ICMP): the black hole of the issue.
//
// The test runs in a child process started in a fresh network namespace (the
// FOB side; wireguard-go's goroutines run on any thread, and only a whole
// process in the namespace keeps them all there) and makes the home side's
// namespace from a locked thread. Nothing touches the machine's namespace;
// both disappear with the child.
func TestKernelPath(t *testing.T) {
	if !nstest.InFreshNetns(t) {
		return
	}
	kernelPathChild(t)
}

// keyPair is a WireGuard key pair in the UAPI's hex.
func keyPair(t *testing.T) (priv, pub string) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(k.Bytes()), hex.EncodeToString(k.PublicKey().Bytes())
}

// side is one end: a TUN called name with address addr, wireguard-go on
// it (wrapped by wrap), listening on port.
func side(t *testing.T, h *netlink.Handle, name, addr string, wrap func(tun.Device) tun.Device, uapi string) *device.Device {
	t.Helper()
	td, err := tun.CreateTUN(name, 1420)
	if err != nil {
		t.Fatalf("create TUN %s: %v", name, err)
	}
	dev := device.NewDevice(wrap(td), conn.NewStdNetBind(), device.NewLogger(device.LogLevelSilent, ""))
	t.Cleanup(dev.Close)
	if err := dev.IpcSet(uapi); err != nil {
		t.Fatalf("%s: IpcSet: %v", name, err)
	}
	if err := dev.Up(); err != nil {
		t.Fatalf("%s: Up: %v", name, err)
	}
	link, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := netlink.ParseAddr(addr)
	if err := h.AddrAdd(link, a); err != nil {
		t.Fatalf("address %s on %s: %v", addr, name, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	return dev
}

// blackhole sets, in the namespace nsPath ("" for the process's own), the
// largest outer datagram the veth link lets out (0: no limit, -1: nothing);
// larger ones vanish without an ICMP error.
func blackhole(t *testing.T, nsPath string, limit int) {
	t.Helper()
	rule := ""
	switch {
	case limit < 0:
		rule = "udp dport { 51820, 51821 } drop"
	case limit > 0:
		rule = fmt.Sprintf("udp dport { 51820, 51821 } ip length > %d drop", limit)
	}
	script := "table ip pmtudtest\ndelete table ip pmtudtest\n" +
		"table ip pmtudtest { chain out { type filter hook output priority filter; policy accept; " + rule + "; }; }\n"
	args := []string{"nft", "-f", "-"}
	if nsPath != "" {
		args = append([]string{"nsenter", "--net=" + nsPath}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft (limit %d): %v: %s", limit, err, out)
	}
}

func kernelPathChild(t *testing.T) {
	// The FOB side: this process's namespace.
	hA, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer hA.Close()
	lo, _ := hA.LinkByName("lo")
	hA.LinkSetUp(lo)

	// The home side: a namespace of its own, entered by this locked thread
	// to create its TUN and sockets.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	nsB, err := netns.New()
	if err != nil {
		t.Fatalf("create the home namespace: %v", err)
	}
	defer nsB.Close()
	if err := netns.Set(orig); err != nil {
		t.Fatal(err)
	}
	nsBPath := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(nsB))
	hB, err := netlink.NewHandleAt(nsB)
	if err != nil {
		t.Fatal(err)
	}
	defer hB.Close()

	la := netlink.NewLinkAttrs()
	la.Name = "veth-fob"
	if err := hA.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "veth-home", PeerNamespace: netlink.NsFd(nsB)}); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	for _, x := range []struct {
		h          *netlink.Handle
		name, addr string
	}{{hA, "veth-fob", "192.0.2.1/24"}, {hB, "veth-home", "192.0.2.2/24"}, {hB, "lo", ""}} {
		l, err := x.h.LinkByName(x.name)
		if err != nil {
			t.Fatal(err)
		}
		if x.addr != "" {
			a, _ := netlink.ParseAddr(x.addr)
			if err := x.h.AddrAdd(l, a); err != nil {
				t.Fatal(err)
			}
		}
		if err := x.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}

	fobPriv, fobPub := keyPair(t)
	homePriv, homePub := keyPair(t)
	var pd *Device
	side(t, hA, "fob0", "10.9.0.2/24", func(d tun.Device) tun.Device { pd = Wrap(d, 1420, 1280); return pd },
		fmt.Sprintf("private_key=%s\nlisten_port=51820\npublic_key=%s\nendpoint=192.0.2.2:51821\nallowed_ip=10.9.0.1/32\n", fobPriv, homePub))
	if err := netns.Set(nsB); err != nil {
		t.Fatal(err)
	}
	side(t, hB, "home0", "10.9.0.1/24", func(d tun.Device) tun.Device { return d },
		fmt.Sprintf("private_key=%s\nlisten_port=51821\npublic_key=%s\nendpoint=192.0.2.1:51820\nallowed_ip=10.9.0.2/32\n", homePriv, fobPub))
	if err := netns.Set(orig); err != nil {
		t.Fatal(err)
	}

	c, err := DialTrigger("fob0", netip.MustParseAddr("10.9.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := pd.Prober(c)
	ctx := context.Background()
	probe := func(size int, want error) {
		t.Helper()
		if err := p.Probe(ctx, size, time.Second); !errors.Is(err, want) && err != want {
			t.Errorf("Probe(%d) = %v, want %v", size, err, want)
		}
	}

	// An open path: the first probe waits for the handshake, whose first
	// initiation may leave before the fresh veth has a carrier and is then
	// sent again 5 s later (REKEY_TIMEOUT); with the rest of `make test`
	// running beside it on 2 cores, the retry once took more than 16 s.
	for i := 0; ; i++ {
		err := p.Probe(ctx, 128, 4*time.Second)
		if err == nil {
			break
		}
		if i == 7 {
			t.Fatalf("first probes over an open path, 32 s: %v", err)
		}
	}
	probe(1420, nil)
	probe(1280, nil)

	// The story's bad link: datagrams above 1400 bytes vanish, both ways.
	// wireguard-go pads an inner packet to a multiple of 16 (capped at the
	// Device's ceiling), so 1328 (1388 outer) gets through and 1329 (padded
	// to 1344: 1404 outer) does not.
	blackhole(t, "", 1400)
	blackhole(t, nsBPath, 1400)
	probe(1328, nil)
	probe(1329, ErrLost)
	probe(1420, ErrLost)

	// Asymmetric: requests pass whole, replies above 1400 vanish.
	blackhole(t, "", 0)
	probe(1329, ErrLost)
	probe(1328, nil)

	// The search, and the MTU set on the TUN as the gateway would.
	blackhole(t, "", 1400)
	var got []string
	// MinTimeout: a loaded test machine may answer slower than 4 round trips.
	s := NewSearcher(Config{Ceiling: 1420, MinTimeout: 500 * time.Millisecond, Active: pd.Active, OnChange: func(old, new int) {
		got = append(got, fmt.Sprintf("%d->%d", old, new))
		l, err := hA.LinkByName("fob0")
		if err == nil {
			err = hA.LinkSetMTU(l, new)
		}
		if err != nil {
			t.Errorf("set the TUN's MTU to %d: %v", new, err)
		}
	}}, p)
	s.full(ctx)
	if st := s.Status(); st.Effective != 1328 || st.State != StateOK || len(got) != 1 {
		t.Fatalf("search over the 1400 link: %+v, changes %v; want 1328", st, got)
	}
	// Packets of the new MTU from the kernel get through the same path (the
	// probe was padded as they are); larger ones are refused at the TUN.
	ping := func(size int) error {
		return exec.Command("ping", "-n", "-q", "-c", "1", "-W", "2", "-M", "do", "-s", fmt.Sprint(size-28), "10.9.0.1").Run()
	}
	if err := ping(1328); err != nil {
		t.Errorf("a 1328-byte ping with DF over the fitted tunnel: %v", err)
	}
	if err := ping(1329); err == nil {
		t.Errorf("a 1329-byte ping with DF left a TUN of MTU 1328")
	}

	// The tunnel goes down: the MTU stays.
	blackhole(t, "", -1)
	s.cfg.Timeout = 300 * time.Millisecond
	s.full(ctx)
	if st := s.Status(); st.Effective != 1328 || st.State != StateDown {
		t.Errorf("tunnel down: %+v; want 1328 kept, state down", st)
	}

	// The path grows back to 1500: the MTU returns to the ceiling.
	blackhole(t, "", 0)
	blackhole(t, nsBPath, 0)
	s.cfg.Timeout = 2 * time.Second
	s.full(ctx)
	if st := s.Status(); st.Effective != 1420 || st.State != StateOK {
		t.Errorf("path back at 1500: %+v; want 1420", st)
	}
	if l, err := hA.LinkByName("fob0"); err != nil || l.Attrs().MTU != 1420 {
		t.Errorf("TUN MTU after growing back: %v, %v", l.Attrs().MTU, err)
	}
	if testing.Verbose() {
		t.Logf("changes %v, status %+v", got, s.Status())
	}
}
