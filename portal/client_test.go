package portal

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// fakeDNS is a DNS server on loopback that knows one name; it counts the
// questions it gets.
type fakeDNS struct {
	addr      netip.AddrPort
	questions atomic.Int32
}

func newFakeDNS(t testing.TB, name string, a netip.Addr) *fakeDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDNS{addr: netip.MustParseAddrPort(pc.LocalAddr().String())}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		f.questions.Add(1)
		m := new(dns.Msg)
		m.SetReply(q)
		qq := q.Question[0]
		switch {
		case !strings.EqualFold(qq.Name, dns.Fqdn(name)):
			m.Rcode = dns.RcodeNameError
		case qq.Qtype == dns.TypeA && a.Is4():
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: a.AsSlice()})
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return f
}

// The client resolves the check's name only through the servers it is
// given (the name exists nowhere else), ignores proxies from the
// environment, and does not follow the redirect.
func TestClientResolvesThroughServers(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://192.0.2.1:3128") // TEST-NET: would hang or fail if used
	t.Setenv("http_proxy", "http://192.0.2.1:3128")
	mux := http.NewServeMux()
	mux.HandleFunc("/generate_204", func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "" && !strings.HasPrefix(r.Host, "check.fobgw.test:") {
			t.Errorf("Host %q, want the check's name", r.Host)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/portal", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://login.fobgw.test/", http.StatusFound)
	})
	web := httptest.NewServer(mux)
	t.Cleanup(web.Close)
	_, port, _ := net.SplitHostPort(web.Listener.Addr().String())

	dnsSrv := newFakeDNS(t, "check.fobgw.test", netip.MustParseAddr("127.0.0.1"))
	dead := netip.MustParseAddrPort("127.0.0.1:1") // nothing answers: the next server is asked
	client := NewClient(ServerResolver{dead, dnsSrv.addr}, 0)

	res := NewDetector(client, Check{URL: "http://check.fobgw.test:" + port + "/generate_204", Status: 204}, 0).Detect(t.Context())
	if res.State != None {
		t.Fatalf("Detect = %+v, want none", res)
	}
	res = NewDetector(client, Check{URL: "http://check.fobgw.test:" + port + "/portal", Status: 204}, 0).Detect(t.Context())
	if res.State != Portal || res.URL != "http://login.fobgw.test/" {
		t.Fatalf("Detect = %+v, want the portal at http://login.fobgw.test/", res)
	}
	if dnsSrv.questions.Load() == 0 {
		t.Fatal("the DNS server got no question")
	}

	res = NewDetector(client, Check{URL: "http://unknown.fobgw.test:" + port + "/generate_204", Status: 204}, 0).Detect(t.Context())
	if res.State != Unknown || !strings.Contains(res.Error, "unknown.fobgw.test") {
		t.Fatalf("Detect of a name nobody knows = %+v, want unknown naming it", res)
	}
}

func TestServerResolverNone(t *testing.T) {
	if _, err := (ServerResolver{}).Resolve(context.Background(), "check.fobgw.test"); err == nil {
		t.Fatal("Resolve without servers succeeded")
	}
}

// An error names the server asked, not one of the system's resolv.conf.
func TestServerResolverNamesServer(t *testing.T) {
	dnsSrv := newFakeDNS(t, "check.fobgw.test", netip.MustParseAddr("127.0.0.1"))
	_, err := ServerResolver{dnsSrv.addr}.Resolve(t.Context(), "other.fobgw.test")
	if err == nil || !strings.Contains(err.Error(), "on "+dnsSrv.addr.String()) {
		t.Fatalf("Resolve of an unknown name: %v; want it to name %v", err, dnsSrv.addr)
	}
}
