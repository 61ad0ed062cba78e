package dnsfwd

import (
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// A cache hit allocates nothing: parse, key, lookup, render and send all work in place.
func TestCacheHitAllocatesNothing(t *testing.T) {
	up := startUpstream(t, answerA("192.0.2.1", 300))
	f := startForwarder(t, up.addr, nil)
	m := query("hot.example", dns.TypeA)
	m.SetEdns0(1232, false)
	exchange(t, f, "udp", m) // now cached
	sink, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	cl := client{udp: f.udp[0], addr: sink.LocalAddr().(*net.UDPAddr).AddrPort()}
	msg := packed(t, m)
	out := make([]byte, 0, maxMsgSize)
	hits := f.Stats().CacheHits
	allocs := testing.AllocsPerRun(200, func() { out = f.handle(msg, out, cl) })
	if got := f.Stats().CacheHits - hits; got < 200 {
		t.Fatalf("%d cache hits, want every run a hit", got)
	}
	if allocs != 0 {
		t.Errorf("cache hit: %v allocations, want 0", allocs)
	}
}
