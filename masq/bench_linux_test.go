package masq

import (
	"net/netip"
	"testing"
	"time"
)

// BenchmarkAddLocal is the DNS forwarder's cost per answer: two addresses
// into the local set, one kernel round trip.
func BenchmarkAddLocal(b *testing.B) {
	w := newWorld(b)
	ns := w.newNS(b)
	n := newNAT(b, ns, breakoutCfg(nil, nil))
	if err := n.Apply(); err != nil {
		b.Fatal(err)
	}
	ls, err := n.OpenLocalSet()
	if err != nil {
		b.Fatal(err)
	}
	defer ls.Close()
	addrs := []netip.Addr{netip.MustParseAddr("203.0.113.80"), netip.MustParseAddr("2001:db8::80")}
	b.ReportAllocs()
	// On a goroutine of its own: the test's is locked to its OS thread (the
	// namespaces), which makes every wait for the kernel's answer a thread
	// hand-off that the forwarder's goroutines do not pay.
	errc := make(chan error)
	go func() {
		for i := 0; b.Loop(); i++ {
			addrs[0] = netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)})
			if err := ls.AddLocal(addrs, time.Minute); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}
