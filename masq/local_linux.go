package masq

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
)

// MaxLocalTimeout caps a local element's life, whatever the record's TTL.
const MaxLocalTimeout = 24 * time.Hour

// LocalSet puts destinations into the local sets, on the DNS forwarder's
// path, before the answer that named them leaves: one lasting netlink
// connection and one transaction (a single round trip to the kernel) per
// call. Its methods are safe for concurrent use; calls are serialised.
type LocalSet struct {
	mu     sync.Mutex // protects the fields below
	c      *nftables.Conn
	s4, s6 *nftables.Set
	e4, e6 []nftables.SetElement // scratch, reused by each call
	keys   []byte                // backing store of the scratch elements' keys
}

// OpenLocalSet returns a LocalSet for the NAT's table. It needs the
// breakout (Config.Breakout.Enabled); the sets it fills are made by Apply.
// Close it when done.
func (n *NAT) OpenLocalSet() (*LocalSet, error) {
	if !n.cfg.Breakout.Enabled {
		return nil, fmt.Errorf("%w: the local sets need the local breakout (Breakout.Enabled)", ErrConfig)
	}
	c, err := nftables.New(append(n.opts[:len(n.opts):len(n.opts)], nftables.AsLasting())...)
	if err != nil {
		return nil, opErr("open nftables", err)
	}
	t := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	return &LocalSet{
		c:  c,
		s4: &nftables.Set{Table: t, Name: SetLocal4, KeyType: nftables.TypeIPAddr, HasTimeout: true},
		s6: &nftables.Set{Table: t, Name: SetLocal6, KeyType: nftables.TypeIP6Addr, HasTimeout: true},
	}, nil
}

// AddLocal puts addrs into the local sets for ttl (at least MinLocalTimeout,
// at most MaxLocalTimeout), in one transaction: when it returns nil, the
// kernel marks every new flow of the LAN to them. An address already there
// gets the new timeout. Addresses that can never be a destination through
// the local ISP (unspecified, loopback, multicast, link-local) are left out;
// IPv4-mapped IPv6 addresses count as IPv4. addrs is not retained.
func (l *LocalSet) AddLocal(addrs []netip.Addr, ttl time.Duration) error {
	ttl = min(max(ttl, MinLocalTimeout), MaxLocalTimeout)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.e4, l.e6 = l.e4[:0], l.e6[:0]
	// Room for every key first: the elements' keys point into it.
	l.keys = slices.Grow(l.keys[:0], 16*len(addrs))
	for _, a := range addrs {
		a = a.Unmap()
		if !a.IsValid() || a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast() {
			continue
		}
		k := len(l.keys)
		if a.Is4() {
			b := a.As4()
			l.keys = append(l.keys, b[:]...)
			l.e4 = append(l.e4, nftables.SetElement{Key: l.keys[k:len(l.keys):len(l.keys)], Timeout: ttl})
		} else {
			b := a.As16()
			l.keys = append(l.keys, b[:]...)
			l.e6 = append(l.e6, nftables.SetElement{Key: l.keys[k:len(l.keys):len(l.keys)], Timeout: ttl})
		}
	}
	if len(l.e4)+len(l.e6) == 0 {
		return nil
	}
	if len(l.e4) > 0 {
		if err := l.c.SetAddElements(l.s4, l.e4); err != nil {
			return opErr("add to set "+SetLocal4, err)
		}
	}
	if len(l.e6) > 0 {
		if err := l.c.SetAddElements(l.s6, l.e6); err != nil {
			return opErr("add to set "+SetLocal6, err)
		}
	}
	if err := l.c.Flush(); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("masquerade: add local destinations: %w: the set is missing (table inet %s removed?); Repair puts it back", err, TableName)
		}
		return opErr("add local destinations", err)
	}
	return nil
}

// Close closes the netlink connection.
func (l *LocalSet) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c.CloseLasting()
}
