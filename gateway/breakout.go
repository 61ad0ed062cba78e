package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fobgw/fobgw/config"
	"github.com/fobgw/fobgw/dnsfwd"
	"github.com/fobgw/fobgw/masq"
	"github.com/fobgw/fobgw/policyroute"
	"github.com/fobgw/fobgw/statuspage"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Local breakout (Bypass, LocalDomains): the masq table marks and
// masquerades what leaves through the local ISP on purpose, policyroute's
// rule sends the marked packets to the main table, and the DNS forwarder
// asks Resolver for the bypassed devices and the LocalDomains names,
// filling masq's local set before it answers. This file gives each its
// part of the Config, follows the addresses of devices bypassed by MAC for
// the forwarder, and reports the breakout in Status.

// breakoutEnabled reports whether masq's breakout (its sets, marks and
// WAN masquerade), the bypass rule and the forwarder's second upstream are
// installed: for Bypass and LocalDomains, and for captive portal windows
// (PortalCheck on), which are the same mechanism for one device.
func breakoutEnabled(cfg *config.Config) bool { return cfg.Breakout() || cfg.PortalCheck.On() }

// breakoutConfig is the breakout part of masq's Config.
func breakoutConfig(cfg *config.Config) masq.Breakout {
	if !breakoutEnabled(cfg) {
		return masq.Breakout{}
	}
	return masq.Breakout{
		Enabled:      true,
		LANInterface: cfg.LANInterface,
		Addrs:        slices.Clone(cfg.BypassAddrs),
		MACs:         slices.Clone(cfg.BypassMACs),
	}
}

// bypassMark is policyroute's BypassMark: masq's mark with the breakout, 0
// without.
func bypassMark(cfg *config.Config) uint32 {
	if breakoutEnabled(cfg) {
		return masq.Mark
	}
	return 0
}

// natStays reports whether a stop leaves the masq table in place: with
// the breakout and the kill switch, a bypassed device keeps its way out
// while fobgw is stopped, as it does after a crash (the bypass rule stays
// with the kill switch).
func natStays(cfg *config.Config) bool { return breakoutEnabled(cfg) && cfg.KillSwitch }

// localResolver is the forwarder's Resolver: the first of Resolver, else
// the first nameserver of resolv.conf that Resolver's rules accept
// (resolvConfServers), read once at start. from says which, for the log and
// `fobgw check`.
func localResolver(cfg *config.Config) (r netip.AddrPort, from string, err error) {
	if len(cfg.Resolver) > 0 {
		return cfg.Resolver[0], "Resolver", nil
	}
	rs, err := resolvConfServers(cfg)()
	if err != nil {
		return netip.AddrPort{}, "", fmt.Errorf("Bypass and LocalDomains need the local ISP's resolver: %w", err)
	}
	return rs[0], cfg.ResolvConfPath(), nil
}

// writeBreakoutPlan writes the breakout's DNS side for `fobgw check`; the
// table and the bypass rule are in masq's and policyroute's plans.
func writeBreakoutPlan(b *strings.Builder, cfg *config.Config) {
	if !breakoutEnabled(cfg) {
		return
	}
	fmt.Fprintf(b, "# local breakout (marked 0x%x by table inet %s, rule priority %d to the main table)\n", masq.Mark, masq.TableName, policyroute.RulePriorityBypass)
	r, from, err := localResolver(cfg)
	res := fmt.Sprintf("%v (from %s)", r, from)
	if err != nil {
		res = "none usable now: " + err.Error()
	}
	if len(cfg.BypassAddrs)+len(cfg.BypassMACs) > 0 {
		fmt.Fprintf(b, "bypass %s: out through the local ISP, masqueraded; their DNS questions to %s\n", strings.Join(bypassList(cfg), ", "), res)
	}
	if len(cfg.BypassMACs) > 0 {
		fmt.Fprintf(b, "bypass by MAC: their addresses followed in the neighbour table of %s\n", cfg.LANInterface)
	}
	if len(cfg.LocalDomains) > 0 {
		fmt.Fprintf(b, "local domains %s (and below): asked of %s for every client; the answers' addresses into sets %s/%s (timeout the TTL, at least %v) before the answer\n",
			strings.Join(cfg.LocalDomains, ", "), res, masq.SetLocal4, masq.SetLocal6, masq.MinLocalTimeout)
	}
	if natStays(cfg) {
		fmt.Fprintf(b, "on stop or crash the table and the bypass rule stay with the kill switch; fobgw down removes them\n")
	}
}

// breakout is the gateway's part of the local breakout while it runs.
type breakout struct {
	cfg      *config.Config
	nat      *masq.NAT
	set      *masq.LocalSet // filled by the forwarder
	resolver netip.AddrPort
	from     string     // where resolver came from
	neigh    *neighbors // nil without Bypass by MAC
}

// newBreakout opens the local set's netlink connection and, with Bypass by
// MAC, subscribes to the LAN's neighbour table; nil without the breakout.
// It changes nothing on the system. Close it when done.
func newBreakout(cfg *config.Config, nat *masq.NAT, log *slog.Logger) (*breakout, error) {
	if !breakoutEnabled(cfg) {
		return nil, nil
	}
	r, from, err := localResolver(cfg)
	if err != nil {
		if cfg.Breakout() {
			return nil, err
		}
		// Only portal windows: without a resolver a window's device still
		// goes out directly; its DNS questions go home, and the log says so
		// when a window opens.
		log.Warn("no local resolver for a captive portal window's DNS questions: set Resolver", "err", err)
	}
	b := &breakout{cfg: cfg, nat: nat, resolver: r, from: from}
	if b.set, err = nat.OpenLocalSet(); err != nil {
		return nil, err
	}
	if len(cfg.BypassMACs) > 0 {
		if b.neigh, err = newNeighbors(cfg.LANInterface, cfg.BypassMACs, log); err != nil {
			b.set.Close()
			return nil, err
		}
	}
	if cfg.Breakout() {
		log.Info("local breakout", "bypass", bypassList(cfg), "local_domains", cfg.LocalDomains, "resolver", r, "resolver_from", from)
	}
	return b, nil
}

// dnsConfig fills the forwarder's breakout fields.
func (b *breakout) dnsConfig(c *dnsfwd.Config) {
	if b == nil {
		return
	}
	c.Resolver = b.resolver
	c.LocalDomains = slices.Clone(b.cfg.LocalDomains)
	c.LocalClients = slices.Clone(b.cfg.BypassAddrs)
	if len(c.LocalDomains) > 0 {
		c.LocalSet = b.set
	}
	if b.neigh != nil {
		c.LocalClient = b.neigh.bypassed
	}
}

// run follows the neighbour table until ctx is done.
func (b *breakout) run(ctx context.Context) {
	if b != nil && b.neigh != nil {
		b.neigh.run(ctx)
	}
}

// close releases the local set's connection and the subscription.
func (b *breakout) close() {
	if b == nil {
		return
	}
	b.set.Close()
	if b.neigh != nil {
		b.neigh.close()
	}
}

// bypassList is Bypass as written, for messages.
func bypassList(cfg *config.Config) []string {
	var out []string
	for _, a := range cfg.BypassAddrs {
		out = append(out, a.String())
	}
	for _, m := range cfg.BypassMACs {
		out = append(out, m.String())
	}
	return out
}

// neighbors follows the LAN interface's neighbour table (a dump at
// subscription, then its updates), so the forwarder can send the questions
// of devices bypassed by MAC to Resolver whatever lease they have. It holds
// every neighbour of the LAN, not only the bypassed ones: an address it
// does not know yet (a device whose first packets of a new lease are its
// DNS question, the table's news still on its way) is looked up in the
// kernel at once, at most every minLookupGap.
type neighbors struct {
	ifname string
	macs   []net.HardwareAddr
	log    *slog.Logger
	ch     chan netlink.NeighUpdate
	done   chan struct{}
	closed sync.Once

	lanIndex   atomic.Int64 // the LAN interface's index as last looked up
	lanChecked atomic.Int64 // when (UnixNano) an unknown index last made it look again
	lastLookup atomic.Int64 // when (UnixNano) an unknown address was last looked up in the kernel

	mu    sync.Mutex                           // serialises writers of addrs
	addrs atomic.Pointer[map[netip.Addr]neigh] // the LAN's neighbours now; replaced whole, read without lock
}

// neigh is a LAN neighbour: its MAC, and whether that is a Bypass MAC.
type neigh struct {
	mac    net.HardwareAddr
	bypass bool
}

// minLookupGap bounds the kernel lookups of unknown addresses, which any
// LAN client can cause by asking from a new address.
const minLookupGap = 50 * time.Millisecond

func newNeighbors(ifname string, macs []net.HardwareAddr, log *slog.Logger) (*neighbors, error) {
	n := &neighbors{ifname: ifname, macs: macs, log: log.With("part", "breakout"),
		ch: make(chan netlink.NeighUpdate, 64), done: make(chan struct{})}
	m := map[netip.Addr]neigh{}
	n.addrs.Store(&m)
	err := netlink.NeighSubscribeWithOptions(n.ch, n.done, netlink.NeighSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(err error) {
			select {
			case <-n.done: // closed: the socket's end is no news
			default:
				n.log.Warn("following the neighbour table failed: devices bypassed by MAC may ask home until fobgw restarts", "err", err)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("follow the neighbour table of %s (Bypass by MAC): %w", ifname, err)
	}
	return n, nil
}

// bypassed reports whether a is held now by a device bypassed by MAC.
func (n *neighbors) bypassed(a netip.Addr) bool {
	if e, ok := (*n.addrs.Load())[a]; ok {
		return e.bypass
	}
	return n.lookup(a)
}

// lookup asks the kernel about an address the table's news has not
// brought yet.
func (n *neighbors) lookup(a netip.Addr) bool {
	now := time.Now().UnixNano()
	last := n.lastLookup.Load()
	if now-last < int64(minLookupGap) || !n.lastLookup.CompareAndSwap(last, now) {
		return false
	}
	ifi, err := net.InterfaceByName(n.ifname)
	if err != nil {
		return false
	}
	family := netlink.FAMILY_V4
	if a.Is6() {
		family = netlink.FAMILY_V6
	}
	list, err := netlink.NeighList(ifi.Index, family)
	if err != nil {
		return false
	}
	for _, e := range list {
		if b, ok := netip.AddrFromSlice(e.IP); ok && b.Unmap() == a && e.State&(unix.NUD_FAILED|unix.NUD_INCOMPLETE) == 0 {
			return n.isBypassMAC(e.HardwareAddr) != nil
		}
	}
	return false
}

// isBypassMAC returns the Bypass MAC equal to m, or nil.
func (n *neighbors) isBypassMAC(m net.HardwareAddr) net.HardwareAddr {
	if i := slices.IndexFunc(n.macs, func(x net.HardwareAddr) bool { return string(x) == string(m) }); i >= 0 {
		return n.macs[i]
	}
	return nil
}

// devices returns each bypassed MAC's addresses now.
func (n *neighbors) devices() map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	if n == nil {
		return out
	}
	for a, e := range *n.addrs.Load() {
		if e.bypass {
			out[e.mac.String()] = append(out[e.mac.String()], a)
		}
	}
	for _, as := range out {
		slices.SortFunc(as, func(x, y netip.Addr) int { return x.Compare(y) })
	}
	return out
}

func (n *neighbors) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			n.close()
			return
		case u, ok := <-n.ch:
			if !ok {
				return
			}
			n.update(u)
		}
	}
}

// update applies one message of the neighbour table.
func (n *neighbors) update(u netlink.NeighUpdate) {
	a, ok := netip.AddrFromSlice(u.IP)
	if !ok || u.Family == unix.AF_BRIDGE || !n.onLAN(u.LinkIndex) {
		return
	}
	a = a.Unmap()
	held := u.Type == unix.RTM_NEWNEIGH && u.State&(unix.NUD_FAILED|unix.NUD_INCOMPLETE) == 0 && len(u.HardwareAddr) == 6
	var e neigh
	if held {
		e.mac = slices.Clone(u.HardwareAddr)
		if m := n.isBypassMAC(u.HardwareAddr); m != nil {
			e.mac, e.bypass = m, true
		}
	}
	old, had := (*n.addrs.Load())[a]
	if held == had && (!held || string(old.mac) == string(e.mac)) {
		return
	}
	n.mu.Lock()
	cur := *n.addrs.Load()
	next := make(map[netip.Addr]neigh, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	if held {
		next[a] = e
	} else {
		delete(next, a)
	}
	n.addrs.Store(&next)
	n.mu.Unlock()
	switch {
	case e.bypass && !(had && old.bypass && string(old.mac) == string(e.mac)):
		n.log.Info("bypassed device seen", "mac", e.mac.String(), "addr", a)
	case had && old.bypass && !e.bypass:
		n.log.Info("bypassed device left an address", "mac", old.mac.String(), "addr", a)
	}
}

// onLAN reports whether the link index is the LAN interface's (looked up
// again, at most once a second, when another index comes: a bridge made
// anew has another).
func (n *neighbors) onLAN(index int) bool {
	if int64(index) == n.lanIndex.Load() {
		return true
	}
	now := time.Now().UnixNano()
	if last := n.lanChecked.Load(); now-last < int64(time.Second) && last != 0 {
		return false
	}
	n.lanChecked.Store(now)
	ifi, err := net.InterfaceByName(n.ifname)
	if err != nil {
		return false
	}
	n.lanIndex.Store(int64(ifi.Index))
	return ifi.Index == index
}

// close ends the subscription; what its goroutine still sends is drained.
func (n *neighbors) close() {
	n.closed.Do(func() {
		close(n.done)
		go func() {
			for range n.ch {
			}
		}()
	})
}

// BreakoutStatus is the local breakout in Status; the questions answered
// through Resolver are the forwarder's (Status.DNS.Local).
type BreakoutStatus struct {
	Resolver string         `json:"resolver"` // the forwarder's Resolver
	Devices  []BypassDevice `json:"devices"`  // Bypass devices and open windows, as the kernel counts them
	Local4   int            `json:"local4"`   // IPv4 addresses in the local set now (LocalDomains answers)
	Local6   int            `json:"local6"`   // IPv6 addresses in it now
	Error    string         `json:"error,omitempty"`
}

// BypassDevice is one device that leaves through the local ISP.
type BypassDevice struct {
	Device        string       `json:"device"`                   // its address or MAC
	Addrs         []netip.Addr `json:"addrs,omitempty"`          // a device by MAC: its addresses in the neighbour table now
	Seen          bool         `json:"seen"`                     // it sent packets, or holds an address on the LAN
	Packets       uint64       `json:"packets"`                  // counted by the kernel while it was bypassed
	Bytes         uint64       `json:"bytes"`                    // likewise
	WindowSeconds float64      `json:"window_seconds,omitempty"` // left of a window (AllowDevice); 0 for a Bypass device
}

// LocalSet is the number of addresses in the local set.
func (b *BreakoutStatus) LocalSet() int { return b.Local4 + b.Local6 }

// status reads the kernel's counters and the neighbour table.
func (b *breakout) status() *BreakoutStatus {
	if b == nil {
		return nil
	}
	s := &BreakoutStatus{Resolver: b.resolver.String(), Devices: []BypassDevice{}}
	c, err := b.nat.Counters()
	if err != nil {
		s.Error = err.Error()
	}
	byMAC := b.neigh.devices()
	for _, d := range c.Devices {
		bd := BypassDevice{Device: d.String(), Packets: d.Packets, Bytes: d.Bytes, WindowSeconds: d.Expires.Seconds()}
		if d.MAC != nil {
			bd.Addrs = byMAC[d.MAC.String()]
		}
		bd.Seen = d.Packets > 0 || len(bd.Addrs) > 0
		s.Devices = append(s.Devices, bd)
	}
	s.Local4, s.Local6 = c.Local4, c.Local6
	if !b.cfg.Breakout() && len(s.Devices) == 0 && s.Error == "" {
		return nil // on only for portal windows, and none is open: nothing to show
	}
	return s
}

// writeText prints the breakout for `fobgw status`.
func (b *BreakoutStatus) writeText(w *strings.Builder, localAnswers uint64) {
	if b == nil {
		return
	}
	fmt.Fprintf(w, "local breakout:   %d questions answered through %s; local set %d addresses (%d IPv4, %d IPv6)\n",
		localAnswers, b.Resolver, b.LocalSet(), b.Local4, b.Local6)
	for _, d := range b.Devices {
		seen := "not seen"
		if d.Seen {
			seen = "seen"
		}
		extra := ""
		if len(d.Addrs) > 0 {
			extra = " at " + join(d.Addrs, ", ")
		}
		if d.WindowSeconds > 0 {
			extra += fmt.Sprintf(" (window, %.0f s left)", d.WindowSeconds)
		}
		fmt.Fprintf(w, "  bypass %s%s: %s, %d packets, %d B\n", d.Device, extra, seen, d.Packets, d.Bytes)
	}
	if b.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", b.Error)
	}
}

// bypassSeen, bypassBytes and localSetSize are the breakout's metrics.
func bypassSeen(s *Status) float64 {
	n := 0
	if s.Breakout != nil {
		for _, d := range s.Breakout.Devices {
			if d.Seen {
				n++
			}
		}
	}
	return float64(n)
}

func bypassBytes(s *Status) float64 {
	var n uint64
	if s.Breakout != nil {
		for _, d := range s.Breakout.Devices {
			n += d.Bytes
		}
	}
	return float64(n)
}

func localSetSize(s *Status) float64 {
	if s.Breakout == nil {
		return 0
	}
	return float64(s.Breakout.LocalSet())
}

// pageBreakout is the breakout for the status page.
func pageBreakout(s *Status) *statuspage.Breakout {
	if s.Breakout == nil {
		return nil
	}
	pb := &statuspage.Breakout{LocalSet: s.Breakout.LocalSet(), LocalAnswers: s.DNS.Local, Devices: []statuspage.Device{}}
	for _, d := range s.Breakout.Devices {
		name := d.Device
		if len(d.Addrs) > 0 {
			name += " (" + join(d.Addrs, ", ") + ")"
		}
		pb.Devices = append(pb.Devices, statuspage.Device{Name: name, Seen: d.Seen, Bytes: d.Bytes})
	}
	return pb
}
