// Package healthtest holds test doubles for the tests of the endpoint's
// health: a DNS server whose records a test moves.
package healthtest

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// DNS is an authoritative stand-in for the local ISP's resolver, for
// tests of the endpoint's resolution.
type DNS struct {
	mu      sync.Mutex
	records map[string][]netip.Addr // fqdn -> addresses, protected by mu
	cname   map[string]string       // fqdn -> target fqdn, protected by mu
	drop    map[uint16]int          // query type -> questions of it still to leave unanswered, protected by mu
	addr    netip.AddrPort
}

// Addr is where it serves.
func (f *DNS) Addr() netip.AddrPort { return f.addr }

// SetCNAME makes name an alias of target.
func (f *DNS) SetCNAME(name, target string) {
	f.mu.Lock()
	f.cname[dns.Fqdn(name)] = dns.Fqdn(target)
	f.mu.Unlock()
}

// Set gives name the addresses (A and AAAA records, TTL 1 s).
func (f *DNS) Set(name string, addrs ...netip.Addr) {
	f.mu.Lock()
	f.records[dns.Fqdn(name)] = addrs
	f.mu.Unlock()
}

// DropNext leaves the next n questions of type qtype unanswered, as a lossy
// network would.
func (f *DNS) DropNext(qtype uint16, n int) {
	f.mu.Lock()
	f.drop[qtype] += n
	f.mu.Unlock()
}

// ServeDNS answers r from the records.
func (f *DNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	q := r.Question[0]
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.drop[q.Qtype] > 0 {
		f.drop[q.Qtype]--
		return
	}
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

// StartDNS serves on addr (UDP and TCP; port 0 picks one).
func StartDNS(tb testing.TB, addr string) *DNS {
	tb.Helper()
	f := &DNS{records: map[string][]netip.Addr{}, cname: map[string]string{}, drop: map[uint16]int{}}
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
