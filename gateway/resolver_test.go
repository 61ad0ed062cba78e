package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fobgw/fobgw/config"
	"github.com/miekg/dns"
)

// fakeDNS is an authoritative stand-in for the local ISP's resolver.
type fakeDNS struct {
	mu      sync.Mutex
	records map[string][]netip.Addr // fqdn -> addresses, protected by mu
	cname   map[string]string       // fqdn -> target fqdn, protected by mu
	addr    netip.AddrPort
}

func (f *fakeDNS) set(name string, addrs ...netip.Addr) {
	f.mu.Lock()
	f.records[dns.Fqdn(name)] = addrs
	f.mu.Unlock()
}

func (f *fakeDNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	q := r.Question[0]
	f.mu.Lock()
	defer f.mu.Unlock()
	name := strings.ToLower(q.Name)
	if t, ok := f.cname[name]; ok {
		m.Answer = append(m.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 1}, Target: t})
		name = t
	}
	addrs, ok := f.records[name]
	if !ok {
		m.Rcode = dns.RcodeNameError
		w.WriteMsg(m)
		return
	}
	for _, a := range addrs {
		hdr := dns.RR_Header{Name: name, Class: dns.ClassINET, Ttl: 1}
		switch {
		case a.Is4() && q.Qtype == dns.TypeA:
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
		case a.Is6() && q.Qtype == dns.TypeAAAA:
			hdr.Rrtype = dns.TypeAAAA
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	w.WriteMsg(m)
}

// startFakeDNS serves on addr (UDP and TCP; port 0 picks one).
func startFakeDNS(tb testing.TB, addr string) *fakeDNS {
	tb.Helper()
	f := &fakeDNS{records: map[string][]netip.Addr{}, cname: map[string]string{}}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	f.addr = netip.MustParseAddrPort(pc.LocalAddr().String())
	srv := &dns.Server{PacketConn: pc, Handler: f}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	tb.Cleanup(func() { srv.Shutdown() })
	return f
}

func TestDNSResolver(t *testing.T) {
	f := startFakeDNS(t, "127.0.0.1:0")
	f.set("home.example.net", addrA, addrC, addrB)
	f.set("v6only.example.net", addrC)
	f.set("empty.example.net")
	f.mu.Lock()
	f.cname["alias.example.net."] = "home.example.net."
	f.mu.Unlock()
	dead := netip.MustParseAddrPort("127.0.0.1:1") // nothing listens: refused
	r := &dnsResolver{servers: []netip.AddrPort{f.addr}, timeout: time.Second}
	tests := []struct {
		name    string
		servers []netip.AddrPort
		host    string
		want    []netip.Addr
		err     string
	}{
		{"A then AAAA", nil, "home.example.net", []netip.Addr{addrA, addrB, addrC}, ""},
		{"case", nil, "HOME.example.net", []netip.Addr{addrA, addrB, addrC}, ""},
		{"cname", nil, "alias.example.net", []netip.Addr{addrA, addrB, addrC}, ""},
		{"v6 only", nil, "v6only.example.net", []netip.Addr{addrC}, ""},
		{"nxdomain", nil, "nope.example.net", nil, "NXDOMAIN"},
		{"no records", nil, "empty.example.net", nil, "no A or AAAA record"},
		{"second server", []netip.AddrPort{dead, f.addr}, "home.example.net", []netip.Addr{addrA, addrB, addrC}, ""},
		{"all dead", []netip.AddrPort{dead}, "home.example.net", nil, "resolver 127.0.0.1:1"},
		{"none", []netip.AddrPort{}, "home.example.net", nil, "no Resolver configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := *r
			if tt.servers != nil {
				rr.servers = tt.servers
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			got, err := rr.Resolve(ctx, tt.host)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestHealerWithDNS runs the healer against a real DNS server whose
// record moves, with a fake tunnel.
func TestHealerWithDNS(t *testing.T) {
	f := startFakeDNS(t, "127.0.0.1:0")
	f.set("home.example.net", addrA)
	es, _ := config.ParseEndpoints("home.example.net:13231")
	e := es[0]
	peer := &fakePeer{}
	pr := &fakeProber{}
	h := newHealer(defaultHealerConfig(e), &dnsResolver{servers: []netip.AddrPort{f.addr}, timeout: time.Second}, pr, peer, discardLogger())
	now := t0
	step := func() { now = now.Add(h.step(context.Background(), now)) }
	step()
	if peer.last() != ap(addrA) {
		t.Fatalf("boot endpoint %v", peer.set)
	}
	pr.err = fmt.Errorf("timeout")
	f.set("home.example.net", addrB)
	for range 3 {
		step()
	}
	if peer.last() != ap(addrB) {
		t.Errorf("after the record moved: %v", peer.set)
	}
}
