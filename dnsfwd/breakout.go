package dnsfwd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Local breakout: some questions go to a second upstream, Config.Resolver (the local ISP's), over the
// gateway's own path (the main table, never the tunnel): every question of a client in LocalClients or
// in a window (AllowClient), and every question for a name in LocalDomains or below it, whoever asks.
// The rest goes home as before. The cache keeps the two apart (keyWay): a name asked both ways is two
// entries.
//
// Before an answer for a LocalDomains name leaves the forwarder, from the upstream or the cache, the
// A and AAAA records of its answer section that belong to the name asked (directly, or along its CNAME
// chain) are given to Config.LocalSet, with their smallest TTL (at least MinLocalTTL); only when it
// returns is the answer sent. So a client can never use such an address before its route is in place.
// If LocalSet fails, the client gets SERVFAIL (Stats.LocalSetErrors) and the answer is not cached.

// MinLocalTTL is the shortest time LocalSet is asked to keep an address: a record with a TTL of 5 s
// must not lose its route while the client is still connecting.
const MinLocalTTL = 60 * time.Second

// LocalSet takes the addresses of the answers for LocalDomains.
type LocalSet interface {
	// AddLocal makes the LAN's new flows to addrs leave through the local ISP for at least ttl
	// (never below MinLocalTTL) and returns once they do. addrs is the caller's and not retained. It
	// is called from the forwarder's serving goroutines, concurrently, before the answer is sent.
	AddLocal(addrs []netip.Addr, ttl time.Duration) error
}

// way is how a question is answered: by the home upstream (0), or by Resolver, perhaps filling the
// local set.
type way uint8

const (
	wayLocal way = 1 << iota // asked of Resolver
	wayFill                  // a LocalDomains name: its answer's addresses go to LocalSet first
)

func (w way) local() bool { return w&wayLocal != 0 }
func (w way) fills() bool { return w&wayFill != 0 }

// key marks the cache key k of a question asked of Resolver.
func (w way) key(k []byte) []byte {
	if w.local() {
		k[len(k)-1] |= keyWay
	}
	return k
}

type breakout struct {
	dial    func(ctx context.Context, network, address string) (net.Conn, error)
	domains [][]byte // LocalDomains in wire form, lower case
	set     LocalSet
	lan     []netip.Prefix
	isLocal func(netip.Addr) bool // Config.LocalClient; nil: none

	mu      sync.Mutex                           // serialises changes of clients
	clients atomic.Pointer[map[netip.Addr]int64] // client -> now() at the end of its window, 0: never; replaced whole, read without lock

	addrs sync.Pool // *[]netip.Addr, scratch of fillLocal
}

// newBreakout validates the breakout's part of cfg; nil without Resolver.
func newBreakout(cfg Config) (*breakout, error) {
	if !cfg.Resolver.IsValid() {
		if len(cfg.LocalDomains) > 0 || len(cfg.LocalClients) > 0 || cfg.LocalClient != nil {
			return nil, errors.New("dnsfwd: LocalDomains or LocalClients without Resolver: give the local ISP's resolver, e.g. 192.168.2.1:53")
		}
		return nil, nil
	}
	if cfg.Resolver.Addr().IsUnspecified() || cfg.Resolver.Port() == 0 {
		return nil, fmt.Errorf("dnsfwd: Resolver %q is not a usable address: give the local ISP's resolver, e.g. 192.168.2.1:53", cfg.Resolver)
	}
	b := &breakout{dial: cfg.ResolverDial, set: cfg.LocalSet, lan: cfg.LAN, isLocal: cfg.LocalClient}
	if b.dial == nil {
		b.dial = (&net.Dialer{Timeout: cfg.Timeout}).DialContext
	}
	var bad []string
	for _, d := range cfg.LocalDomains {
		w, err := domainWire(d)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		if !slices.ContainsFunc(b.domains, func(x []byte) bool { return string(x) == string(w) }) {
			b.domains = append(b.domains, w)
		}
	}
	if len(b.domains) > 0 && b.set == nil {
		bad = append(bad, "LocalDomains without a LocalSet: the answers' addresses would have no route")
	}
	m := make(map[netip.Addr]int64)
	for _, a := range cfg.LocalClients {
		a = a.Unmap()
		if !slices.ContainsFunc(cfg.LAN, func(p netip.Prefix) bool { return p.Contains(a) }) {
			bad = append(bad, fmt.Sprintf("local client %v is not inside LAN", a))
			continue
		}
		m[a] = 0
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("dnsfwd: local breakout: %s", strings.Join(bad, "; "))
	}
	b.clients.Store(&m)
	b.addrs.New = func() any { s := make([]netip.Addr, 0, 16); return &s }
	return b, nil
}

// domainWire returns the name s (presentation form, a final dot optional) in wire form, lower case.
func domainWire(s string) ([]byte, error) {
	name := strings.TrimSuffix(strings.ToLower(s), ".")
	if name == "" {
		return nil, fmt.Errorf("%q is not a domain name (the root would send every question to Resolver)", s)
	}
	var w []byte
	for _, l := range strings.Split(name, ".") {
		if l == "" || len(l) > 63 {
			return nil, fmt.Errorf("%q is not a domain name: labels of 1 to 63 characters", s)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return nil, fmt.Errorf("%q is not a domain name: letters, digits, '-' and '_' only", s)
			}
		}
		w = append(append(w, byte(len(l))), l...)
	}
	w = append(w, 0)
	if len(w) > maxNameLen {
		return nil, fmt.Errorf("%q is longer than a domain name can be (255 bytes)", s)
	}
	return w, nil
}

// choose picks the way of the query msg (question ending at qend) from client; nil b: home.
func (b *breakout) choose(client netip.Addr, msg []byte, qend int) way {
	if b == nil {
		return 0
	}
	if b.localName(msg[headerLen : qend-4]) {
		return wayLocal | wayFill
	}
	if end, ok := (*b.clients.Load())[client.Unmap()]; ok && (end == 0 || now() < end) {
		return wayLocal
	}
	if b.isLocal != nil && b.isLocal(client.Unmap()) {
		return wayLocal
	}
	return 0
}

// localName reports whether the uncompressed wire name is one of the domains or below one.
func (b *breakout) localName(name []byte) bool {
	for i := 0; i < len(name) && name[i] != 0; i += 1 + int(name[i]) {
		rest := name[i:]
		for _, d := range b.domains {
			if len(d) == len(rest) && equalFold(d, rest) {
				return true
			}
		}
	}
	return false
}

func equalFold(lowered, b []byte) bool {
	for i := range lowered {
		if lowered[i] != lower(b[i]) {
			return false
		}
	}
	return true
}

// AllowClient sends every question of client to Resolver for d (a captive portal's window), from
// now; a later call sets a new end. d <= 0 ends a window at once. A client of Config.LocalClients
// stays as configured.
func (f *Forwarder) AllowClient(client netip.Addr, d time.Duration) error {
	b := f.brk
	if b == nil {
		return errors.New("dnsfwd: AllowClient without Resolver")
	}
	client = client.Unmap()
	if !slices.ContainsFunc(b.lan, func(p netip.Prefix) bool { return p.Contains(client) }) {
		return fmt.Errorf("dnsfwd: AllowClient: %v is not inside LAN", client)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.clients.Load()
	if end, ok := old[client]; ok && end == 0 {
		return nil
	}
	m := make(map[netip.Addr]int64, len(old)+1)
	t := now()
	for a, end := range old {
		if end == 0 || t < end { // ended windows go
			m[a] = end
		}
	}
	if d > 0 {
		m[client] = t + int64(d)
	} else {
		delete(m, client)
	}
	b.clients.Store(&m)
	return nil
}

// passLocal is the breakout's part of a cache hit: it fills the local set for the rendered answer
// msg if w says so, and counts the answer as local. False: the set failed, answer SERVFAIL.
func (f *Forwarder) passLocal(w way, msg []byte, qend int) bool {
	if w.fills() && !f.fillLocal(msg, qend) {
		return false
	}
	if w.local() {
		f.st.local.Add(1)
	}
	return true
}

// fillLocal gives the addresses of the answer msg (question ending at qend) for the name asked to
// LocalSet, and reports whether that worked (or there were none).
func (f *Forwarder) fillLocal(msg []byte, qend int) bool {
	sp := f.brk.addrs.Get().(*[]netip.Addr)
	defer f.brk.addrs.Put(sp)
	addrs, ttl := answerAddrs(msg, qend, (*sp)[:0])
	*sp = addrs[:0]
	if len(addrs) == 0 {
		return true
	}
	if err := f.brk.set.AddLocal(addrs, max(time.Duration(ttl)*time.Second, MinLocalTTL)); err != nil {
		if f.st.localSetErrors.Add(1)&(1<<10-1) == 1 { // the first, then one in 1024
			f.log.Warn("dnsfwd: local set failed; answering SERVFAIL", "err", err)
		}
		return false
	}
	return true
}

// Record types and class of the answers fillLocal reads (RFC 1035 3.2.2, RFC 3596).
const (
	typeA     = 1
	typeCNAME = 5
	typeAAAA  = 28
	classIN   = 1

	maxChain = 16 // CNAMEs followed from the name asked
)

// answerAddrs appends to out the addresses of the A and AAAA records (class IN) in the answer section
// of msg whose owner is the name asked (msg[headerLen:qend-4]) or a name its CNAME chain leads to, in
// any order, and returns their smallest TTL. Records of other owners are ignored: an upstream cannot
// slip an unrelated address into the local set. A malformed section yields what was read before it.
func answerAddrs(msg []byte, qend int, out []netip.Addr) ([]netip.Addr, uint32) {
	type rr struct{ owner, rdata, rdlen int }
	var rrs [64]rr
	an := min(int(binary.BigEndian.Uint16(msg[offANCount:])), len(rrs))
	var types [64]uint16
	var ttls [64]uint32
	n := 0
	off := qend
	for ; n < an; n++ {
		owner := off
		if off = skipName(msg, off); off < 0 || off+10 > len(msg) {
			break
		}
		rdlen := int(binary.BigEndian.Uint16(msg[off+8:]))
		if off+10+rdlen > len(msg) {
			break
		}
		if binary.BigEndian.Uint16(msg[off+2:]) != classIN {
			types[n] = 0
		} else {
			types[n] = binary.BigEndian.Uint16(msg[off:])
		}
		ttl := binary.BigEndian.Uint32(msg[off+4:])
		if ttl > 1<<31-1 { // RFC 2181 section 8: treat as zero
			ttl = 0
		}
		ttls[n] = ttl
		rrs[n] = rr{owner, off + 10, rdlen}
		off += 10 + rdlen
	}
	var chain [maxChain + 1]int // offsets of the names on the chain, the name asked first
	chain[0] = headerLen
	links := 1
	var used [64]bool
	minTTL := ^uint32(0)
	for changed := true; changed; {
		changed = false
		for i := range n {
			if used[i] || types[i] == 0 {
				continue
			}
			on := false
			for _, c := range chain[:links] {
				if sameName(msg, rrs[i].owner, c) {
					on = true
					break
				}
			}
			if !on {
				continue
			}
			r := rrs[i]
			switch {
			case types[i] == typeCNAME && links < len(chain) && skipName(msg, r.rdata) == r.rdata+r.rdlen:
				used[i], changed = true, true
				chain[links] = r.rdata
				links++
			case types[i] == typeA && r.rdlen == 4:
				used[i] = true
				out = append(out, netip.AddrFrom4([4]byte(msg[r.rdata:r.rdata+4])))
				minTTL = min(minTTL, ttls[i])
			case types[i] == typeAAAA && r.rdlen == 16:
				used[i] = true
				out = append(out, netip.AddrFrom16([16]byte(msg[r.rdata:r.rdata+16])))
				minTTL = min(minTTL, ttls[i])
			}
		}
	}
	if len(out) == 0 {
		minTTL = 0
	}
	return out, minTTL
}

// sameName reports whether the (possibly compressed) names at offsets a and b of msg are equal, ASCII
// case aside. A malformed name, or a pointer loop, is equal to nothing.
func sameName(msg []byte, a, b int) bool {
	for hops := 0; hops < 2*maxNameLen; hops++ {
		if a = follow(msg, a); a < 0 {
			return false
		}
		if b = follow(msg, b); b < 0 {
			return false
		}
		la, lb := int(msg[a]), int(msg[b])
		if la != lb || a+1+la > len(msg) || b+1+lb > len(msg) {
			return false
		}
		if la == 0 {
			return true
		}
		for i := 1; i <= la; i++ {
			if lower(msg[a+i]) != lower(msg[b+i]) {
				return false
			}
		}
		a, b = a+1+la, b+1+lb
	}
	return false
}

// follow returns the offset of the label at off, after following compression pointers (RFC 1035
// 4.1.4), each strictly backwards; -1 if malformed.
func follow(msg []byte, off int) int {
	for {
		if off >= len(msg) {
			return -1
		}
		switch c := msg[off]; {
		case c < 0x40:
			return off
		case c >= 0xc0:
			if off+1 >= len(msg) {
				return -1
			}
			to := int(binary.BigEndian.Uint16(msg[off:]) & 0x3fff)
			if to >= off {
				return -1
			}
			off = to
		default:
			return -1
		}
	}
}
