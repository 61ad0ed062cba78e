package gateway

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/fobgw/fobgw/internal/nstest"

	"github.com/vishvananda/netlink"
)

// TestWatchUnderlayKernel: a link's MTU change and a new default route ask
// for a search round; the tunnel's own MTU change does not. In a child
// process in a fresh network namespace (see TestRunKernel).
func TestWatchUnderlayKernel(t *testing.T) {
	if !nstest.InFreshNetns(t) {
		return
	}
	h, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	add := func(name string) netlink.Link {
		la := netlink.NewLinkAttrs()
		la.Name = name
		l := &netlink.Veth{LinkAttrs: la, PeerName: name + "p"} // no dummy module everywhere
		if err := h.LinkAdd(l); err != nil {
			t.Fatalf("add %s: %v", name, err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	wan, tunl := add("wan0"), add("fobgw0")

	triggers := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go watchUnderlay(ctx, "fobgw0", func() { triggers <- struct{}{} }, slog.New(slog.DiscardHandler))
	// Deliberate waits here: watchUnderlay says nothing when it has
	// subscribed, and a change that must not trigger can only be waited out
	// (the kernel's news arrives on sockets of its own, in real time).
	time.Sleep(300 * time.Millisecond) // subscribed, the existing links listed
	drain := func() {
		for {
			select {
			case <-triggers:
			case <-time.After(300 * time.Millisecond):
				return
			}
		}
	}
	expect := func(what string, want bool) {
		t.Helper()
		select {
		case <-triggers:
			if !want {
				t.Errorf("%s: a search round was asked for", what)
			}
		case <-time.After(2 * time.Second):
			if want {
				t.Errorf("%s: no search round asked for", what)
			}
		}
		drain()
	}
	drain()
	if err := h.LinkSetMTU(tunl, 1300); err != nil {
		t.Fatal(err)
	}
	expect("the tunnel's MTU set", false)
	if err := h.LinkSetMTU(wan, 1400); err != nil {
		t.Fatal(err)
	}
	expect("the WAN's MTU 1500 -> 1400", true)
	if err := h.AddrAdd(wan, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(192, 0, 2, 2), Mask: net.CIDRMask(24, 32)}}); err != nil {
		t.Fatal(err)
	}
	expect("an address and its prefix route", false)
	if err := h.RouteAdd(&netlink.Route{LinkIndex: wan.Attrs().Index, Gw: net.IPv4(192, 0, 2, 1)}); err != nil {
		t.Fatalf("add a default route: %v", err)
	}
	expect("a default route added", true)
}
