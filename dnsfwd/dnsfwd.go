// Package dnsfwd is the gateway's DNS forwarder: it answers the LAN's queries on one address (UDP and
// TCP), forwards misses to one upstream resolver through sockets bound to the tunnel interface, validates
// every answer against its query, and caches answers within their TTLs.
//
// It knows DNS and sockets, nothing of routing or WireGuard.
//
// Clients outside Config.LAN are dropped without an answer (UDP) or disconnected (TCP): the forwarder is
// never an open resolver, and never reflects traffic toward a spoofed source. It listens only on an
// address inside the LAN.
//
// Every query is parsed whole before anything is forwarded or cached (parseQuery): one question, no
// answer or authority record, at most one OPT and nothing else in the additional section, every count
// exact, no byte left over. Anything else is answered FORMERR and counted (Stats.Malformed).
//
// EDNS (RFC 6891) is passed through, except the COOKIE (RFC 7873) and client subnet (RFC 7871) options,
// which are removed from queries and answers: the home resolver learns nothing of the LAN's subnets,
// and a cached or coalesced answer carries no other client's cookie or subnet.
package dnsfwd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Defaults applied by New for zero Config fields.
const (
	DefaultTimeout     = 2 * time.Second
	DefaultMaxInFlight = 1024
	DefaultCacheSize   = 10000
	DefaultCacheBytes  = 8 << 20
	DefaultMaxTTL      = time.Hour

	maxInFlight = 1<<16 - 1 // every socket's table then always has a free 16-bit ID
)

// Config is the forwarder's configuration. Zero values of the optional fields mean the defaults above.
type Config struct {
	Listen      netip.AddrPort // DNSListen, e.g. 192.168.86.1:53: UDP and TCP, only this address, inside LAN (port 0: any free port, tests)
	LAN         []netip.Prefix // only clients inside these are answered
	Upstream    netip.AddrPort // DNSUpstream:53, reached only through the tunnel
	Interface   string         // tunnel interface: SO_BINDTODEVICE on every upstream socket ("" only with Dial set)
	Timeout     time.Duration  // per query upstream timeout (default 2s)
	MaxInFlight int            // bound on concurrent upstream queries (default 1024); beyond it clients get REFUSED at once
	CacheSize   int            // entries (default 10000); 0 means default, negative disables the cache
	CacheBytes  int            // bytes the cache may hold, answers and bookkeeping (default 8 MiB); answers above 4 KiB are not cached
	MaxTTL      time.Duration  // cap on cached TTLs, positive and negative (RFC 2308) (default 1h)
	Logger      *slog.Logger   // nil: discard

	// Local breakout (see breakout.go): questions of LocalClients and for LocalDomains go to
	// Resolver; the addresses of LocalDomains answers go to LocalSet before the answer leaves.
	// Resolver is the local ISP's resolver, host:53; zero: no breakout, the fields below unused. It
	// may have Upstream's address (a local network that uses home's addresses): its sockets are the
	// main table's, Upstream's are bound to the tunnel, so they reach two different servers.
	Resolver     netip.AddrPort
	LocalDomains []string     // names whose answers come from Resolver, and all names below them
	LocalClients []netip.Addr // clients whose every question goes to Resolver (Bypass devices)
	LocalSet     LocalSet     // required with LocalDomains
	// LocalClient, if set, is asked about each question's client not in LocalClients nor in a window:
	// true sends the question to Resolver too (devices bypassed by MAC, whose addresses the gateway
	// follows). It is called from the serving goroutines, concurrently, per question: it must be fast
	// (a rare look-up in the kernel is fine) and must not wait on the network.
	LocalClient func(client netip.Addr) bool
	// ResolverDial, if set, replaces the dialer of the sockets to Resolver; the default is a plain
	// dialer: the gateway's own traffic, routed by the main table to the local ISP, never the tunnel.
	ResolverDial func(ctx context.Context, network, address string) (net.Conn, error)

	// Dial, if set, replaces the dialer of upstream sockets ("udp" and "tcp" to Upstream). Tests use it
	// to reach a loopback upstream; the default dialer binds every socket to Interface.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// ErrClosed is returned by Start after Close. It is fatal for the Forwarder.
var ErrClosed = errors.New("dnsfwd: forwarder closed")

// Forwarder is a running (after Start) DNS forwarder. Its methods are safe for concurrent use.
type Forwarder struct {
	cfg    Config
	log    *slog.Logger
	dial   func(ctx context.Context, network, address string) (net.Conn, error)
	cache  *cache // nil when disabled
	coal   *coalescer
	brk    *breakout // nil without Resolver
	st     counters
	metric *collector

	rotateQueries uint32 // udpRotateQueries; tests lower it before Start

	mu      sync.Mutex // protects the fields below
	started bool
	closed  bool
	udp     []*net.UDPConn
	tcp     net.Listener
	addr    netip.AddrPort
	ups     *upstreams
	local   *upstreams // Resolver; nil without the breakout
	done    chan struct{}

	tcpMu    sync.Mutex
	tcpConns map[net.Conn]struct{} // protected by tcpMu: TCP clients being served

	wg sync.WaitGroup
}

// New validates cfg and returns a Forwarder that is not yet serving.
func New(cfg Config) (*Forwarder, error) {
	if !cfg.Listen.IsValid() || !cfg.Listen.Addr().IsValid() || cfg.Listen.Addr().IsUnspecified() {
		return nil, fmt.Errorf("dnsfwd: DNSListen %q is not a usable address: give the LAN address of the gateway, e.g. 192.168.86.1:53", cfg.Listen)
	}
	if len(cfg.LAN) == 0 {
		return nil, errors.New("dnsfwd: no LAN prefix: without one no client would be answered; set LAN, e.g. 192.168.86.0/24")
	}
	inLAN := false
	for i, p := range cfg.LAN {
		if !p.IsValid() {
			return nil, fmt.Errorf("dnsfwd: LAN prefix %d (%q) is invalid: use CIDR notation, e.g. 192.168.86.0/24", i, p)
		}
		cfg.LAN[i] = p.Masked()
		inLAN = inLAN || cfg.LAN[i].Contains(cfg.Listen.Addr().Unmap())
	}
	if !inLAN {
		// Elsewhere (the WAN address, say) port 53 would be open where no client is ever answered.
		lans := make([]string, len(cfg.LAN))
		for i, p := range cfg.LAN {
			lans[i] = p.String()
		}
		return nil, fmt.Errorf("dnsfwd: DNSListen %s is not inside LAN %s: use the gateway's LAN address", cfg.Listen, strings.Join(lans, ", "))
	}
	if !cfg.Upstream.IsValid() || cfg.Upstream.Addr().IsUnspecified() || cfg.Upstream.Port() == 0 {
		return nil, fmt.Errorf("dnsfwd: DNSUpstream %q is not a usable address: give the home resolver, e.g. 192.168.88.1:53", cfg.Upstream)
	}
	if cfg.Interface == "" && cfg.Dial == nil {
		return nil, errors.New("dnsfwd: no tunnel Interface: upstream sockets must be bound to the tunnel (e.g. fobgw0) so queries cannot leave by the local ISP")
	}
	if cfg.Timeout < 0 || cfg.MaxInFlight < 0 || cfg.MaxTTL < 0 || cfg.CacheBytes < 0 {
		return nil, fmt.Errorf("dnsfwd: negative Timeout (%v), MaxInFlight (%d), MaxTTL (%v) or CacheBytes (%d): use 0 for the default",
			cfg.Timeout, cfg.MaxInFlight, cfg.MaxTTL, cfg.CacheBytes)
	}
	if cfg.MaxInFlight > maxInFlight {
		return nil, fmt.Errorf("dnsfwd: MaxInFlight %d is above %d, the upstream ID space of one socket: lower it", cfg.MaxInFlight, maxInFlight)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.CacheBytes == 0 {
		cfg.CacheBytes = DefaultCacheBytes
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = DefaultMaxTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var err error
	f := &Forwarder{cfg: cfg, log: cfg.Logger, dial: cfg.Dial, done: make(chan struct{}), coal: newCoalescer(),
		rotateQueries: udpRotateQueries}
	if f.dial == nil {
		f.dial = boundDialer(cfg.Interface, cfg.Timeout)
	}
	if cfg.CacheSize > 0 {
		f.cache = newCache(cfg.CacheSize, cfg.CacheBytes, cfg.MaxTTL)
	}
	if f.brk, err = newBreakout(cfg); err != nil {
		return nil, err
	}
	f.metric = newCollector(f)
	return f, nil
}

// Addr returns the address served (UDP and TCP), useful when Listen had port 0. It is invalid before Start.
func (f *Forwarder) Addr() netip.AddrPort {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addr
}
