package dnsfwd

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// The cache holds packed answers. Keys are the lower-cased question (name, type, class) plus the bits
// of the query that change the answer: CD (RFC 4035), DO (RFC 3225) and whether EDNS was used at all.
// Entries are immutable once inserted; serving copies one and patches ID, question case and TTLs.
//
// It is bounded twice, per shard: by entries (CacheSize) and by bytes (CacheBytes), each split evenly
// over the shards. Answers larger than maxCacheEntry are not cached: nearly all answers are a few
// hundred bytes, and a few 64 KiB TCP answers must not push thousands of them out (nor 10,000 of them
// take 640 MB).
//
// Eviction is a segmented LRU: a new entry joins the probationary segment; a hit there promotes it to
// the protected segment, which holds at most protectedShare of the shard. The probationary segment's
// least recently used entry is evicted first, the protected one's only when probation is empty; the
// protected segment's overflow is demoted back to probation. So a burst of names asked once (a page
// full of trackers, dnsperf's unique names) churns only probation, and the names the LAN asks again and
// again stay. An expired entry keeps its place until replaced or evicted, so that a hot name refreshed
// after its TTL returns to the protected segment.

const cacheShards = 16

const (
	maxCacheEntry = 4 << 10 // bytes of answer: larger ones are forwarded, not cached
	entryOverhead = 160     // bytes an entry costs besides its key, answer and TTL list (struct, map slot)

	protectedShare = 0.8 // of a shard's entries and bytes, at most, in the protected segment
)

const (
	keyCD   = 1 << 0
	keyDO   = 1 << 1
	keyEDNS = 1 << 2
	keyWay  = 1 << 3 // answered by Resolver, not the home upstream (breakout.go)
)

// maxKeyLen is a question (name up to 255 bytes, type, class) plus the flag byte.
const maxKeyLen = maxNameLen + 4 + 1

// cacheKey writes the key of the query msg (parsed into q) to buf and returns it.
func cacheKey(buf *[maxKeyLen]byte, msg []byte, q *question) []byte {
	n := copy(buf[:], msg[headerLen:q.end])
	for i := range n - 4 {
		buf[i] = lower(buf[i])
	}
	var fl byte
	if msg[offFlags2]&flagCD != 0 {
		fl |= keyCD
	}
	if q.do {
		fl |= keyDO
	}
	if q.edns {
		fl |= keyEDNS
	}
	buf[n] = fl
	return buf[:n+1]
}

type entry struct {
	key    string
	msg    []byte   // the answer as received, its question included
	ttls   []ttlRef // the TTLs to decrement, their values when stored capped at MaxTTL
	stored int64    // monotonic nanoseconds (see now)
	expiry int64    // stored + keep
	size   int      // bytes charged to the shard's budget

	prev, next *entry // LRU list of its segment, protected by the shard's mu
	protected  bool   // in the protected segment; protected by the shard's mu
}

type shard struct {
	c     *cache // owner: its counts
	mu    sync.Mutex
	m     map[string]*entry // protected by mu
	prob  entry             // sentinel of the probationary LRU list, most recent first; protected by mu
	prot  entry             // sentinel of the protected LRU list, most recent first; protected by mu
	bytes int               // protected by mu: sum of the entries' size
	nProt int               // protected by mu: entries in the protected segment
	bProt int               // protected by mu: their size
	max   int               // entries
	maxB  int               // bytes
	maxP  int               // entries in the protected segment
	maxPB int               // bytes in the protected segment
}

type cache struct {
	seed   maphash.Seed
	maxTTL uint32
	n      atomic.Int64 // entries, over all shards
	bytes  atomic.Int64 // their sizes, over all shards
	shards [cacheShards]shard
}

// newCache returns a cache of at most about size entries and maxBytes bytes (both rounded up to a
// multiple of cacheShards), keeping answers at most maxTTL.
func newCache(size, maxBytes int, maxTTL time.Duration) *cache {
	c := &cache{seed: maphash.MakeSeed(), maxTTL: uint32(min(maxTTL/time.Second, 1<<31-1))}
	per := (size + cacheShards - 1) / cacheShards
	perB := (maxBytes + cacheShards - 1) / cacheShards
	for i := range c.shards {
		s := &c.shards[i]
		s.m = make(map[string]*entry)
		s.c = c
		s.prob.prev, s.prob.next = &s.prob, &s.prob
		s.prot.prev, s.prot.next = &s.prot, &s.prot
		s.max, s.maxB = per, perB
		s.maxP, s.maxPB = int(float64(per)*protectedShare), int(float64(perB)*protectedShare)
	}
	return c
}

var epoch = time.Now()

// now is a monotonic clock in nanoseconds.
func now() int64 { return int64(time.Since(epoch)) }

func (c *cache) shard(key []byte) *shard {
	return &c.shards[maphash.Bytes(c.seed, key)%cacheShards]
}

func (c *cache) shardOf(key string) *shard {
	return &c.shards[maphash.String(c.seed, key)%cacheShards]
}

// get returns the live entry for key, or nil. A hit promotes a probationary entry to the protected
// segment, and makes a protected one its most recent.
func (c *cache) get(key []byte, t int64) *entry {
	s := c.shard(key)
	s.mu.Lock()
	e := s.m[string(key)]
	if e != nil {
		if t >= e.expiry {
			e = nil // kept in place: put replaces it in its segment
		} else {
			s.promote(e)
		}
	}
	s.mu.Unlock()
	return e
}

// promote makes e the most recent protected entry, demoting the protected segment's least recent
// entries to probation while it is over its share.
func (s *shard) promote(e *entry) {
	if e.protected {
		if s.prot.next != e {
			unlink(e)
			pushFront(&s.prot, e)
		}
		return
	}
	unlink(e)
	e.protected = true
	s.nProt++
	s.bProt += e.size
	pushFront(&s.prot, e)
	for (s.nProt > s.maxP || s.bProt > s.maxPB) && s.prot.prev != &s.prot {
		d := s.prot.prev
		unlink(d)
		d.protected = false
		s.nProt--
		s.bProt -= d.size
		pushFront(&s.prob, d)
	}
}

// put stores a copy of the answer msg under key if info says it may be kept and it is at most
// maxCacheEntry bytes.
func (c *cache) put(key string, msg []byte, info *rrInfo, t int64) {
	keep := min(info.keep, c.maxTTL)
	if keep == 0 || len(msg) > maxCacheEntry {
		return
	}
	size := len(key) + len(msg) + 8*len(info.ttls) + entryOverhead
	s := c.shardOf(key)
	if size > s.maxB {
		return
	}
	e := &entry{
		key:    key,
		msg:    append([]byte(nil), msg...),
		ttls:   append([]ttlRef(nil), info.ttls...),
		stored: t,
		expiry: t + int64(keep)*int64(time.Second),
		size:   size,
	}
	for i := range e.ttls {
		e.ttls[i].ttl = min(e.ttls[i].ttl, c.maxTTL)
	}
	s.mu.Lock()
	hot := false // the key was hit since it was stored: it goes back to the protected segment
	if old := s.m[e.key]; old != nil {
		hot = old.protected
		s.remove(old)
	}
	for len(s.m) >= s.max || s.bytes+size > s.maxB {
		v := s.prob.prev
		if v == &s.prob {
			v = s.prot.prev
		}
		if v == &s.prot {
			break
		}
		s.remove(v)
	}
	s.m[e.key] = e
	s.bytes += size
	s.c.n.Add(1)
	s.c.bytes.Add(int64(size))
	pushFront(&s.prob, e)
	if hot {
		s.promote(e)
	}
	s.mu.Unlock()
}

func (c *cache) len() int { return int(c.n.Load()) }

// size returns the bytes the entries cost, as counted against the budget.
func (c *cache) size() int { return int(c.bytes.Load()) }

func (s *shard) remove(e *entry) {
	unlink(e)
	if e.protected {
		s.nProt--
		s.bProt -= e.size
	}
	delete(s.m, e.key)
	s.bytes -= e.size
	s.c.n.Add(-1)
	s.c.bytes.Add(-int64(e.size))
}

// pushFront makes e the most recent entry of the list whose sentinel is head.
func pushFront(head, e *entry) {
	e.prev, e.next = head, head.next
	head.next.prev = e
	head.next = e
}

func unlink(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

// render writes the entry, aged to time t, as the answer to query (whose question ends at qend) into
// dst and returns it. The caller has checked t < e.expiry.
func (e *entry) render(dst []byte, query []byte, qend int, t int64) []byte {
	dst = append(dst[:0], e.msg...)
	copy(dst[offID:offID+2], query[offID:offID+2])
	copy(dst[headerLen:qend], query[headerLen:qend]) // the client's spelling of the name (RFC 4343, 0x20)
	age := uint32((t - e.stored) / int64(time.Second))
	for _, r := range e.ttls {
		ttl := r.ttl
		if ttl > age {
			ttl -= age
		} else {
			ttl = 0
		}
		binary.BigEndian.PutUint32(dst[r.off:], ttl)
	}
	return dst
}
