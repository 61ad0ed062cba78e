package dnsfwd

import (
	"hash/maphash"
	"sync"
)

// Identical questions in flight (same cache key: lower-cased question, CD, DO, EDNS) are coalesced:
// the first is sent upstream as the leader, later ones wait on it as followers and share its answer
// or its failure. Followers count against MaxInFlight like leaders, so memory stays bounded.

const (
	coalesceShards = 16
	maxFollowers   = 256 // beyond this a question is sent upstream again, as a new leader's
)

type coalescer struct {
	seed   maphash.Seed
	shards [coalesceShards]struct {
		mu      sync.Mutex
		leaders map[string]*pending // protected by mu
	}
}

func newCoalescer() *coalescer {
	c := &coalescer{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].leaders = make(map[string]*pending)
	}
	return c
}

// join makes p a follower of the leader for key and reports true, or records p as the leader for key
// and reports false: the caller then sends p upstream.
func (c *coalescer) join(key []byte, p *pending) bool {
	s := &c.shards[maphash.Bytes(c.seed, key)%coalesceShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.leaders[string(key)]; l != nil && len(l.followers) < maxFollowers {
		l.followers = append(l.followers, p)
		return true
	}
	p.key = string(key)
	s.leaders[p.key] = p
	return false
}

// leave removes the leader p and returns its followers, which no longer grow.
func (c *coalescer) leave(p *pending) []*pending {
	if p.key == "" {
		return nil
	}
	s := &c.shards[maphash.String(c.seed, p.key)%coalesceShards]
	s.mu.Lock()
	if s.leaders[p.key] == p {
		delete(s.leaders, p.key)
	}
	fs := p.followers
	p.followers = nil
	s.mu.Unlock()
	return fs
}
