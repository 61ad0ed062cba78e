package health

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fobgw/fobgw/config"
	"github.com/fobgw/fobgw/health/healthtest"
	"github.com/miekg/dns"
)

func TestDNSResolver(t *testing.T) {
	f := healthtest.StartDNS(t, "127.0.0.1:0")
	f.Set("home.example.net", addrA, addrC, addrB)
	f.Set("v6only.example.net", addrC)
	f.Set("empty.example.net")
	f.SetCNAME("alias.example.net", "home.example.net")
	dead := netip.MustParseAddrPort("127.0.0.1:1") // nothing listens: refused
	r := &dnsResolver{servers: []netip.AddrPort{f.Addr()}, timeout: time.Second}
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
		{"second server", []netip.AddrPort{dead, f.Addr()}, "home.example.net", []netip.Addr{addrA, addrB, addrC}, ""},
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

// TestDNSResolverLostA: when the A question is lost and the AAAA answers,
// the A is asked again, so the endpoint list still starts with IPv4; when
// the A is lost twice, the AAAA addresses are what there is.
func TestDNSResolverLostA(t *testing.T) {
	f := healthtest.StartDNS(t, "127.0.0.1:0")
	f.Set("home.example.net", addrA, addrC)
	r := &dnsResolver{servers: []netip.AddrPort{f.Addr()}, timeout: 200 * time.Millisecond}
	for _, tt := range []struct {
		lost int
		want []netip.Addr
	}{{1, []netip.Addr{addrA, addrC}}, {2, []netip.Addr{addrC}}} {
		f.DropNext(dns.TypeA, tt.lost)
		got, err := r.Resolve(context.Background(), "home.example.net")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%d A questions lost: got %v, want %v", tt.lost, got, tt.want)
		}
	}
}

// TestHealerWithDNS runs the healer against a real DNS server whose
// record moves, with a fake tunnel.
func TestHealerWithDNS(t *testing.T) {
	f := healthtest.StartDNS(t, "127.0.0.1:0")
	f.Set("home.example.net", addrA)
	es, _ := config.ParseEndpoints("home.example.net:13231")
	peer := &fakePeer{}
	pr := &fakeProber{}
	h := newHealer(defaultParams(), Config{Endpoints: es, Resolver: NewDNSResolver([]netip.AddrPort{f.Addr()}, nil, time.Second),
		Prober: pr, Peer: peer, Log: discardLogger()})
	now := t0
	step := func() { now = now.Add(h.step(context.Background(), now)) }
	step()
	if peer.last() != ap(addrA) {
		t.Fatalf("boot endpoint %v", peer.set)
	}
	pr.err = fmt.Errorf("timeout")
	f.Set("home.example.net", addrB)
	for range 3 {
		step()
	}
	if peer.last() != ap(addrB) {
		t.Errorf("after the record moved: %v", peer.set)
	}
}
