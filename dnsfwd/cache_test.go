package dnsfwd

import (
	"fmt"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestCacheBoundedLRU(t *testing.T) {
	for _, size := range []int{1, 16, 100} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			c := newCache(size, DefaultCacheBytes, time.Hour)
			limit := cacheShards * ((size + cacheShards - 1) / cacheShards)
			info := &rrInfo{keep: 60}
			hot := "hot"
			for i := range 2000 {
				c.put(fmt.Sprintf("k%d", i), []byte{1}, info, 0)
				if c.get([]byte(hot), 0) == nil {
					c.put(hot, []byte{2}, info, 0)
				}
				if n := c.len(); n > limit {
					t.Fatalf("after %d puts the cache holds %d entries, limit %d", i+1, n, limit)
				}
			}
			if size >= cacheShards*2 && c.get([]byte(hot), 0) == nil {
				t.Error("the entry used after every put was evicted: not LRU")
			}
			if e := c.get([]byte("k1999"), int64(61*time.Second)); e != nil {
				t.Error("entry served after its TTL")
			}
		})
	}
}

func TestCacheBoundedBytes(t *testing.T) {
	const budget = 64 << 10
	c := newCache(100000, budget, time.Hour)
	info := &rrInfo{keep: 60, ttls: make([]ttlRef, 3)}
	msg := make([]byte, 1000)
	hot := "hot"
	for i := range 2000 {
		c.put(fmt.Sprintf("k%d", i), msg, info, 0)
		if c.get([]byte(hot), 0) == nil {
			c.put(hot, msg, info, 0)
		}
		if n := c.size(); n > budget {
			t.Fatalf("after %d puts the cache holds %d bytes, budget %d", i+1, n, budget)
		}
	}
	if n := c.len(); n < budget/2/(1000+entryOverhead+30) {
		t.Errorf("%d entries of about 1.2 KiB in a budget of %d bytes: evicting too much", n, budget)
	}
	if c.get([]byte(hot), 0) == nil {
		t.Error("the entry used after every put was evicted: not LRU")
	}
	// An answer above maxCacheEntry is not cached, whatever the budget.
	c = newCache(100, DefaultCacheBytes, time.Hour)
	c.put("big", make([]byte, maxCacheEntry+1), info, 0)
	c.put("limit", make([]byte, maxCacheEntry), info, 0)
	if c.get([]byte("big"), 0) != nil || c.get([]byte("limit"), 0) == nil {
		t.Errorf("entries of %d and %d bytes: want only the second cached", maxCacheEntry+1, maxCacheEntry)
	}
	if got, want := c.size(), len("limit")+maxCacheEntry+8*len(info.ttls)+entryOverhead; got != want {
		t.Errorf("cache size %d, want %d", got, want)
	}
}

func TestCacheKey(t *testing.T) {
	base := func() *dns.Msg { return query("Key.Example", dns.TypeA) }
	key := func(m *dns.Msg) string {
		b := packed(t, m)
		q, ok := parseMessage(b)
		if !ok {
			t.Fatalf("parse %v", m)
		}
		var kb [maxKeyLen]byte
		return string(cacheKey(&kb, b, &q))
	}
	k0 := key(base())
	lowered := query("key.example", dns.TypeA)
	lowered.Id = 77
	if key(lowered) != k0 {
		t.Error("case or ID changes the key")
	}
	for name, mod := range map[string]func(*dns.Msg){
		"type":  func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAAAA },
		"class": func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS },
		"CD":    func(m *dns.Msg) { m.CheckingDisabled = true },
		"EDNS":  func(m *dns.Msg) { m.SetEdns0(1232, false) },
		"DO":    func(m *dns.Msg) { m.SetEdns0(1232, true) },
	} {
		m := base()
		mod(m)
		if key(m) == k0 {
			t.Errorf("%s does not change the key", name)
		}
	}
}

// TestCacheBurstKeepsHotNames: names asked more than once survive a burst of names asked once, many
// times the cache's size (a plain LRU would have evicted every one of them), also a hot name that
// expired and was stored again.
func TestCacheBurstKeepsHotNames(t *testing.T) {
	const size, hot = 1600, 500
	c := newCache(size, DefaultCacheBytes, time.Hour)
	short, long := &rrInfo{keep: 1}, &rrInfo{keep: 600}
	for i := range hot {
		info := long
		if i == 0 {
			info = short // expires after 1 s, then refreshed
		}
		c.put(fmt.Sprintf("hot%d", i), []byte{1}, info, 0)
		if c.get([]byte(fmt.Sprintf("hot%d", i)), 0) == nil {
			t.Fatalf("hot%d not cached", i)
		}
	}
	t1 := int64(2 * time.Second)
	if c.get([]byte("hot0"), t1) != nil {
		t.Fatal("hot0 served after its TTL")
	}
	c.put("hot0", []byte{1}, long, t1) // the upstream's fresh answer
	for i := range 100 * size {
		c.put(fmt.Sprintf("burst%d", i), []byte{2}, long, t1)
		if n := c.len(); n > size {
			t.Fatalf("after %d puts the cache holds %d entries, limit %d", i+1, n, size)
		}
	}
	lost := 0
	for i := range hot {
		if c.get([]byte(fmt.Sprintf("hot%d", i)), t1) == nil {
			lost++
		}
	}
	if lost != 0 {
		t.Errorf("%d of %d hot names evicted by a burst of %d names asked once", lost, hot, 100*size)
	}
	if c.get([]byte(fmt.Sprintf("burst%d", 100*size-1)), t1) == nil {
		t.Error("the burst's last name is not cached: probation is not admitting new names")
	}
}

// TestCacheAgesAndExpires: the cache's clock is the time its callers pass; an entry's TTLs are
// served decremented by the whole seconds it was kept, and it is gone once its shortest TTL passed.
func TestCacheAgesAndExpires(t *testing.T) {
	c := newCache(100, DefaultCacheBytes, time.Minute)
	store := func(name string, ttl uint32, at int64) {
		t.Helper()
		q := packed(t, query(name, dns.TypeA))
		a, _ := answerA("192.0.2.9", ttl)("udp", query(name, dns.TypeA)).Pack()
		c.put(string(cacheKeyOf(t, q)), a, answerInfo(t, a), at)
	}
	served := func(name string, at int64) (ttl uint32, ok bool) {
		t.Helper()
		q := packed(t, query(name, dns.TypeA))
		e := c.get(cacheKeyOf(t, q), at)
		if e == nil {
			return 0, false
		}
		pq, _ := parseMessage(q)
		r := new(dns.Msg)
		if err := r.Unpack(e.render(nil, q, pq.end, at)); err != nil || len(r.Answer) != 1 {
			t.Fatalf("%s: rendered %v, %v", name, r, err)
		}
		return r.Answer[0].Header().Ttl, true
	}
	const s = int64(time.Second)
	t0 := 1000 * s // any point of the clock
	store("short.example", 1, t0)
	store("three.example", 3, t0)
	store("long.example", 86400, t0)
	for _, tc := range []struct {
		name string
		at   int64
		ttl  uint32
		ok   bool
	}{
		{"three.example", t0, 3, true},
		{"three.example", t0 + 1100*s/1000, 2, true}, // 1.1 s later: one whole second off
		{"three.example", t0 + 3*s - 1, 1, true},
		{"three.example", t0 + 3*s, 0, false},
		{"short.example", t0 + s - 1, 1, true},
		{"short.example", t0 + s, 0, false},
		{"long.example", t0, 60, true}, // capped at MaxTTL
		{"long.example", t0 + 59*s, 1, true},
		{"long.example", t0 + 60*s, 0, false},
	} {
		ttl, ok := served(tc.name, tc.at)
		if ok != tc.ok || ttl != tc.ttl {
			t.Errorf("%s at +%v: served %v with TTL %d, want served %v with TTL %d", tc.name, time.Duration(tc.at-t0), ok, ttl, tc.ok, tc.ttl)
		}
	}
}

// cacheKeyOf is the cache key of the packed query q.
func cacheKeyOf(tb testing.TB, q []byte) []byte {
	tb.Helper()
	pq, ok := parseMessage(q)
	if !ok {
		tb.Fatalf("query does not parse: %x", q)
	}
	var kb [maxKeyLen]byte
	return append([]byte(nil), cacheKey(&kb, q, &pq)...)
}

// answerInfo is what the forwarder learns of the packed answer a before caching it.
func answerInfo(tb testing.TB, a []byte) *rrInfo {
	tb.Helper()
	q, ok := parseMessage(a)
	if !ok {
		tb.Fatalf("answer does not parse: %x", a)
	}
	var info rrInfo
	if !scanAnswer(a, q.end, &info) {
		tb.Fatalf("answer's records do not parse: %x", a)
	}
	return &info
}
