package dnsfwd

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeSet is a LocalSet that records what it is given, or fails.
type fakeSet struct {
	mu    sync.Mutex
	calls []setCall // protected by mu
	fail  bool      // protected by mu
}

type setCall struct {
	addrs []netip.Addr
	ttl   time.Duration
}

func (s *fakeSet) AddLocal(addrs []netip.Addr, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("set gone")
	}
	s.calls = append(s.calls, setCall{slices.Clone(addrs), ttl})
	return nil
}

func (s *fakeSet) take() []setCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	return c
}

func rr(tb testing.TB, s string) dns.RR {
	tb.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// localResolver answers like the local ISP's: www.bank.example is a CNAME to a CDN, with an
// unrelated record beside it that must never reach the set; every other A question 192.0.2.1.
func localResolver(tb testing.TB) func(string, *dns.Msg) *dns.Msg {
	return func(_ string, r *dns.Msg) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Compress = true
		q := r.Question[0]
		switch {
		case strings.EqualFold(q.Name, "www.bank.example.") && q.Qtype == dns.TypeA:
			m.Answer = []dns.RR{
				rr(tb, q.Name+" 300 IN CNAME edge.cdn.example."),
				rr(tb, "evil.example. 300 IN A 192.0.2.66"),
				rr(tb, "edge.cdn.example. 30 IN A 192.0.2.7"),
				rr(tb, "edge.cdn.example. 90 IN A 192.0.2.8"),
			}
		case strings.EqualFold(q.Name, "www.bank.example.") && q.Qtype == dns.TypeAAAA:
			m.Answer = []dns.RR{
				rr(tb, q.Name+" 300 IN CNAME edge.cdn.example."),
				rr(tb, "edge.cdn.example. 7200 IN AAAA 2001:db8::7"),
			}
		case q.Qtype == dns.TypeA:
			m.Answer = []dns.RR{rr(tb, q.Name+" 120 IN A 192.0.2.1")}
		}
		return m
	}
}

// exchangeFrom asks f the question m from the client address from, over UDP.
func exchangeFrom(tb testing.TB, f *Forwarder, from string, m *dns.Msg) *dns.Msg {
	tb.Helper()
	c := &dns.Client{Net: "udp", Timeout: 3 * time.Second,
		Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(from)}}}
	r, _, err := c.Exchange(m, f.Addr().String())
	if err != nil {
		tb.Fatalf("exchange from %s %v: %v", from, m.Question, err)
	}
	return r
}

func firstA(tb testing.TB, r *dns.Msg) string {
	tb.Helper()
	for _, a := range r.Answer {
		if a, ok := a.(*dns.A); ok {
			return a.A.String()
		}
	}
	tb.Fatalf("no A record in %v", r)
	return ""
}

func startBreakout(tb testing.TB, set LocalSet, mod func(*Config)) (f *Forwarder, home, local *upstream) {
	home = startUpstream(tb, answerA("10.0.0.1", 120))
	local = startUpstream(tb, localResolver(tb))
	f = startForwarder(tb, home.addr, func(c *Config) {
		c.Dial = loopbackDial
		c.Resolver = local.addr
		c.ResolverDial = loopbackDial
		c.LocalDomains = []string{"Bank.Example."}
		c.LocalClients = []netip.Addr{netip.MustParseAddr("127.0.0.2")}
		c.LocalSet = set
		if mod != nil {
			mod(c)
		}
	})
	return f, home, local
}

func TestBreakoutByClient(t *testing.T) {
	set := &fakeSet{}
	f, home, local := startBreakout(t, set, nil)
	for round := range 2 { // the second round comes from the cache, still apart
		if got := firstA(t, exchangeFrom(t, f, "127.0.0.1", query("news.example", dns.TypeA))); got != "10.0.0.1" {
			t.Errorf("round %d: a tunnel client got %s, want the home answer", round, got)
		}
		if got := firstA(t, exchangeFrom(t, f, "127.0.0.2", query("news.example", dns.TypeA))); got != "192.0.2.1" {
			t.Errorf("round %d: a bypassed client got %s, want the local answer", round, got)
		}
	}
	if h, l := home.udpQ.Load(), local.udpQ.Load(); h != 1 || l != 1 {
		t.Errorf("upstream questions: home %d, local %d; want 1 and 1 (then the cache, kept apart)", h, l)
	}
	if c := set.take(); len(c) != 0 {
		t.Errorf("a bypassed client's ordinary name filled the set: %v", c)
	}
	if s := f.Stats(); s.Local != 2 {
		t.Errorf("Stats.Local = %d, want 2", s.Local)
	}

	// A window: home before, local during, home after.
	ask := func() string { return firstA(t, exchangeFrom(t, f, "127.0.0.3", query("window.example", dns.TypeA))) }
	if got := ask(); got != "10.0.0.1" {
		t.Errorf("before the window: %s", got)
	}
	if err := f.AllowClient(netip.MustParseAddr("127.0.0.3"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := ask(); got != "192.0.2.1" {
		t.Errorf("in the window: %s", got)
	}
	if err := f.AllowClient(netip.MustParseAddr("127.0.0.3"), 0); err != nil {
		t.Fatal(err)
	}
	if got := ask(); got != "10.0.0.1" {
		t.Errorf("after the window: %s", got)
	}
	if err := f.AllowClient(netip.MustParseAddr("10.9.9.9"), time.Hour); err == nil {
		t.Error("AllowClient outside LAN: no error")
	}
}

func TestBreakoutByName(t *testing.T) {
	set := &fakeSet{}
	f, home, _ := startBreakout(t, set, nil)
	for round, name := range []string{"www.bank.example", "WWW.Bank.EXAMPLE"} { // the second: the cache, case aside
		r := exchangeFrom(t, f, "127.0.0.1", query(name, dns.TypeA))
		if got := firstA(t, r); got != "192.0.2.66" && got != "192.0.2.7" {
			t.Errorf("round %d: %s", round, got)
		}
		calls := set.take()
		if len(calls) != 1 {
			t.Fatalf("round %d: %d calls to the set, want 1", round, len(calls))
		}
		want := []netip.Addr{netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("192.0.2.8")}
		if !slices.Equal(calls[0].addrs, want) {
			t.Errorf("round %d: the set got %v, want %v (along the CNAME, nothing else)", round, calls[0].addrs, want)
		}
		if calls[0].ttl != MinLocalTTL {
			t.Errorf("round %d: ttl %v, want the minimum %v (the records say 30 s)", round, calls[0].ttl, MinLocalTTL)
		}
	}
	r := exchangeFrom(t, f, "127.0.0.1", query("www.bank.example", dns.TypeAAAA))
	if calls := set.take(); len(calls) != 1 || calls[0].ttl != 7200*time.Second || calls[0].addrs[0] != netip.MustParseAddr("2001:db8::7") {
		t.Errorf("AAAA: the set got %v for %v", calls, r.Answer)
	}
	// The domain itself is below itself; a name that only ends in its letters is not.
	if got := firstA(t, exchangeFrom(t, f, "127.0.0.1", query("bank.example", dns.TypeA))); got != "192.0.2.1" {
		t.Errorf("bank.example: %s, want the local answer", got)
	}
	if got := firstA(t, exchangeFrom(t, f, "127.0.0.1", query("notbank.example", dns.TypeA))); got != "10.0.0.1" {
		t.Errorf("notbank.example: %s, want the home answer", got)
	}
	if home.udpQ.Load() != 1 {
		t.Errorf("home asked %d times, want 1 (notbank.example)", home.udpQ.Load())
	}
	set.take()

	// The set fails: the client gets no address without its route.
	set.mu.Lock()
	set.fail = true
	set.mu.Unlock()
	for _, name := range []string{"www.bank.example", "fresh.bank.example"} { // cached, and from the upstream
		if r := exchangeFrom(t, f, "127.0.0.1", query(name, dns.TypeA)); r.Rcode != dns.RcodeServerFailure || len(r.Answer) != 0 {
			t.Errorf("%s with the set failing: %v, want SERVFAIL without records", name, r)
		}
	}
	if s := f.Stats(); s.LocalSetErrors != 2 {
		t.Errorf("Stats.LocalSetErrors = %d, want 2", s.LocalSetErrors)
	}
}

func TestBreakoutConfig(t *testing.T) {
	up := netip.MustParseAddrPort("127.0.0.1:53")
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"domains without resolver", func(c *Config) { c.LocalDomains = []string{"a.example"} }, "without Resolver"},
		{"root", func(c *Config) {
			c.Resolver = netip.MustParseAddrPort("127.0.0.2:53")
			c.LocalDomains = []string{"."}
			c.LocalSet = &fakeSet{}
		}, "the root"},
		{"bad label", func(c *Config) {
			c.Resolver = netip.MustParseAddrPort("127.0.0.2:53")
			c.LocalDomains = []string{"a..example", "b c.example"}
			c.LocalSet = &fakeSet{}
		}, `"a..example" is not a domain name: labels of 1 to 63 characters; "b c.example" is not`},
		{"no set", func(c *Config) {
			c.Resolver = netip.MustParseAddrPort("127.0.0.2:53")
			c.LocalDomains = []string{"a.example"}
		}, "without a LocalSet"},
		{"client outside LAN", func(c *Config) {
			c.Resolver = netip.MustParseAddrPort("127.0.0.2:53")
			c.LocalClients = []netip.Addr{netip.MustParseAddr("10.0.0.1")}
		}, "not inside LAN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Listen: netip.MustParseAddrPort("127.0.0.1:0"), LAN: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
				Upstream: up, Interface: "lo"}
			tc.mod(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// compressed is m in wire form, compressed.
func compressed(tb testing.TB, m *dns.Msg) []byte {
	tb.Helper()
	m.Compress = true
	b, err := m.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestAnswerAddrs(t *testing.T) {
	q := query("a.example", dns.TypeA)
	for _, tc := range []struct {
		name    string
		answer  []string
		want    []string
		wantTTL uint32
	}{
		{"direct", []string{"a.example. 50 IN A 192.0.2.1", "a.example. 40 IN A 192.0.2.2"}, []string{"192.0.2.1", "192.0.2.2"}, 40},
		{"chain out of order", []string{"c.example. 70 IN A 192.0.2.3", "b.example. 60 IN CNAME c.example.", "a.example. 60 IN CNAME b.example."}, []string{"192.0.2.3"}, 70},
		{"other owners", []string{"x.example. 60 IN A 192.0.2.9", "a.example. 60 IN CNAME b.example.", "z.example. 60 IN AAAA 2001:db8::9"}, nil, 0},
		{"cname loop", []string{"a.example. 60 IN CNAME b.example.", "b.example. 60 IN CNAME a.example.", "b.example. 60 IN AAAA 2001:db8::1"}, []string{"2001:db8::1"}, 60},
		{"other class", []string{"a.example. 60 CH A 192.0.2.1"}, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := new(dns.Msg)
			m.SetReply(q)
			for _, s := range tc.answer {
				m.Answer = append(m.Answer, rr(t, s))
			}
			msg := compressed(t, m)
			qq, ok := parseMessage(msg)
			if !ok {
				t.Fatal("parseMessage")
			}
			got, ttl := answerAddrs(msg, qq.end, nil)
			var gs []string
			for _, a := range got {
				gs = append(gs, a.String())
			}
			if !slices.Equal(gs, tc.want) || ttl != tc.wantTTL {
				t.Errorf("answerAddrs = %v, %d; want %v, %d", gs, ttl, tc.want, tc.wantTTL)
			}
		})
	}
}

// FuzzAnswerAddrs: any bytes after a valid question: no panic, and every address returned is the
// RDATA of an A or AAAA record in the message.
func FuzzAnswerAddrs(f *testing.F) {
	m := new(dns.Msg)
	m.SetReply(query("a.example", dns.TypeA))
	m.Answer = []dns.RR{rr(f, "a.example. 60 IN CNAME b.example."), rr(f, "b.example. 60 IN A 192.0.2.1")}
	f.Add(compressed(f, m))
	f.Fuzz(func(t *testing.T, msg []byte) {
		q, ok := parseMessage(msg)
		if !ok {
			return
		}
		got, _ := answerAddrs(msg, q.end, nil)
		for _, a := range got {
			var b []byte
			if a.Is4() {
				x := a.As4()
				b = x[:]
			} else {
				x := a.As16()
				b = x[:]
			}
			if !strings.Contains(string(msg[q.end:]), string(b)) {
				t.Fatalf("address %v is not in the message", a)
			}
		}
	})
}

// TestBreakoutAllocs: choosing the way and filling the set allocate nothing per answer.
func TestBreakoutAllocs(t *testing.T) {
	b, err := newBreakout(Config{Resolver: netip.MustParseAddrPort("192.0.2.53:53"), LAN: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		LocalDomains: []string{"example"}, LocalSet: nopSet{}})
	if err != nil {
		t.Fatal(err)
	}
	f := &Forwarder{brk: b}
	m := new(dns.Msg)
	m.SetReply(query("a.example", dns.TypeA))
	m.Answer = []dns.RR{rr(t, "a.example. 60 IN CNAME b.example."), rr(t, "b.example. 60 IN A 192.0.2.1")}
	msg := compressed(t, m)
	q, _ := parseMessage(msg)
	client := netip.MustParseAddr("127.0.0.1")
	if n := testing.AllocsPerRun(100, func() {
		if w := b.choose(client, msg, q.end); !w.fills() || !f.fillLocal(msg, q.end) {
			t.Fatal("not filled")
		}
	}); n != 0 {
		t.Errorf("%v allocations per answer", n)
	}
}

type nopSet struct{}

func (nopSet) AddLocal([]netip.Addr, time.Duration) error { return nil }

// TestBreakoutTCP: a LocalDomains question over TCP goes to Resolver over TCP, and fills the set.
func TestBreakoutTCP(t *testing.T) {
	set := &fakeSet{}
	f, home, local := startBreakout(t, set, nil)
	if got := firstA(t, exchange(t, f, "tcp", query("www.bank.example", dns.TypeA))); got != "192.0.2.66" {
		t.Errorf("over TCP: %s", got)
	}
	if local.tcpQ.Load() != 1 || home.tcpQ.Load()+home.udpQ.Load() != 0 {
		t.Errorf("Resolver asked %d times over TCP, home %d; want 1 and 0", local.tcpQ.Load(), home.tcpQ.Load()+home.udpQ.Load())
	}
	if c := set.take(); len(c) != 1 || len(c[0].addrs) != 2 {
		t.Errorf("the set got %v", c)
	}
}

// TestWindowEnds: a window whose end has passed sends the client home again.
func TestWindowEnds(t *testing.T) {
	b, err := newBreakout(Config{Resolver: netip.MustParseAddrPort("192.0.2.53:53"), LAN: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	msg := compressed(t, query("a.example", dns.TypeA))
	q, _ := parseMessage(msg)
	c := netip.MustParseAddr("127.0.0.9")
	for _, tc := range []struct {
		end  int64
		want way
	}{{now() + int64(time.Hour), wayLocal}, {now() - 1, 0}, {0, wayLocal}} {
		b.clients.Store(&map[netip.Addr]int64{c: tc.end})
		if got := b.choose(c, msg, q.end); got != tc.want {
			t.Errorf("window ending at %d (now %d): way %d, want %d", tc.end, now(), got, tc.want)
		}
	}
}

// A client that Config.LocalClient names (a device bypassed by MAC, whose address the gateway
// follows) is asked about per question: its answer follows the lookup's as it changes.
func TestBreakoutLocalClientFunc(t *testing.T) {
	var mu sync.Mutex
	current := netip.MustParseAddr("127.0.0.4") // protected by mu
	f, _, _ := startBreakout(t, &fakeSet{}, func(c *Config) {
		c.LocalClient = func(a netip.Addr) bool {
			mu.Lock()
			defer mu.Unlock()
			return a == current
		}
	})
	ask := func(from string) string { return firstA(t, exchangeFrom(t, f, from, query("tv.example", dns.TypeA))) }
	if got := ask("127.0.0.4"); got != "192.0.2.1" {
		t.Errorf("the device at its first address got %s, want the local answer", got)
	}
	if got := ask("127.0.0.5"); got != "10.0.0.1" {
		t.Errorf("another client got %s, want the home answer", got)
	}
	mu.Lock()
	current = netip.MustParseAddr("127.0.0.5") // a new lease
	mu.Unlock()
	if got := ask("127.0.0.5"); got != "192.0.2.1" {
		t.Errorf("the device at its new address got %s, want the local answer", got)
	}
	if got := ask("127.0.0.4"); got != "10.0.0.1" {
		t.Errorf("its old address got %s, want the home answer", got)
	}
	if _, err := New(Config{Listen: netip.MustParseAddrPort("127.0.0.1:0"), LAN: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Upstream: netip.MustParseAddrPort("127.0.0.1:53"), Interface: "lo", LocalClient: func(netip.Addr) bool { return true }}); err == nil {
		t.Error("LocalClient without Resolver: no error")
	}
}
