package policyroute

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/fobgw/fobgw/internal/netaddr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Router applies a State through one netlink handle. Its methods are not
// safe for concurrent use, but for HomeNetworksOnLink; the gateway calls
// them from one goroutine.
type Router struct {
	h          *netlink.Handle
	cfg        Config
	state      State
	sysctlRoot string
	ns         netns.NsHandle // -1: write sysctls from the calling thread

	mu     sync.Mutex
	onLink []netip.Prefix // home networks the gateway is attached to, at the last reconcile
}

// HomeNetworksOnLink returns the home networks that were also networks the
// gateway is attached to at the last Apply, ApplyKillSwitch or Repair: an
// on-link route of another interface for exactly that prefix (the local
// network uses the same addresses as home). fobgw leaves out its routes
// there that would win over that route and keeps the kill switch's beneath
// it, so the gateway reaches the local network, its way out; the LAN still
// reaches home's through the tunnel, and the tunnel's own sockets (DNS
// forwarder, probes) are bound to it.
func (r *Router) HomeNetworksOnLink() []netip.Prefix {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.onLink)
}

// Option configures a Router.
type Option func(*Router)

// WithSysctlRoot makes the Router read and write sysctls under dir instead of
// /proc/sys (for tests).
func WithSysctlRoot(dir string) Option { return func(r *Router) { r.sysctlRoot = dir } }

// WithNetNS makes the Router write sysctls from a thread switched into ns,
// which must be the namespace h is bound to. Without it, sysctls land in the
// namespace of the calling OS thread. The Router does not close ns.
func WithNetNS(ns netns.NsHandle) Option { return func(r *Router) { r.ns = ns } }

// New returns a Router for cfg on h, a handle bound to the target network
// namespace (netlink.NewHandle() for the current one, netlink.NewHandleAt for
// another). cfg is validated as by Desired. Nothing is changed yet.
func New(h *netlink.Handle, cfg Config, opts ...Option) (*Router, error) {
	st, err := Desired(cfg)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("policyroute: New: nil netlink handle")
	}
	norm, _ := cfg.validate()
	r := &Router{h: h, cfg: norm, state: st, sysctlRoot: "/proc/sys", ns: -1}
	for _, o := range opts {
		o(r)
	}
	return r, nil
}

// State returns the desired state the Router applies.
func (r *Router) State() State { return r.state }

// ApplyKillSwitch installs what needs no tunnel interface: with
// Config.KillSwitch the unreachable routes (table defaults and home
// fallbacks), then the LAN rules, and the forwarding sysctls. Call it before
// the tunnel exists. It also deletes fobgw-owned routes and rules the
// configuration no longer asks for, except a route in the place (table,
// destination, metric) of one of the tunnel routes, which Apply replaces in
// one step. Without Config.KillSwitch, LAN traffic falls through to the main
// table until Apply adds the tunnel routes. Routes of others where only
// fobgw's belong are reported as by Apply.
func (r *Router) ApplyKillSwitch() error {
	_, err := r.reconcile(false)
	return err
}

// Apply installs the whole state; the tunnel and LAN interfaces must exist
// (ErrNoInterface otherwise, after the kill switch is in place). It is
// idempotent: it adds only what is missing, replaces or deletes fobgw-owned
// entries that differ from the configuration, and leaves everything else
// alone. The LAN's table belongs to fobgw: a route of another program in it,
// or one in the main table for exactly a home network at a metric not above
// fobgw's, is not deleted but reported, after everything else is in place,
// as an error wrapping ErrForeignRoute that names it (also when it is the
// reason an add fails with EEXIST).
func (r *Router) Apply() error {
	_, err := r.reconcile(true)
	return err
}

// Repair compares the system with the state, repairs any drift (a flushed
// rule or table, a changed sysctl, stale fobgw entries) and returns the
// number of items it added, deleted or rewrote; 0 means no drift. If the
// tunnel interface is gone it repairs the kill switch and returns an error
// wrapping ErrNoInterface. Routes of others in fobgw's place make it return
// an error wrapping ErrForeignRoute at every call, as Apply does.
func (r *Router) Repair() (repaired int, err error) {
	return r.reconcile(true)
}

// Remove deletes every route and rule carrying Protocol, whatever
// configuration installed it; entries of others are left alone. With
// keepKillSwitch and Config.KillSwitch, fobgw's rules and unreachable routes
// stay, so the LAN remains cut off from the local ISP while fobgw is down.
// Sysctls are not restored (see SaveSysctls and the package documentation).
func (r *Router) Remove(keepKillSwitch bool) error {
	keep := keepKillSwitch && r.cfg.KillSwitch
	var errs []error
	routes, err := r.ownedRoutes()
	if err != nil {
		return err
	}
	for _, k := range routes {
		if keep && k.Type == unix.RTN_UNREACHABLE {
			continue
		}
		if err := r.h.RouteDel(&k); err != nil && !isGone(err) {
			errs = append(errs, r.opErr("delete route", describeRoute(k), err))
		}
	}
	if !keep {
		rules, err := r.ownedRules()
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		for _, k := range rules {
			if err := r.h.RuleDel(&k); err != nil && !isGone(err) {
				errs = append(errs, r.opErr("delete rule", describeRule(k), err))
			}
		}
	}
	return errors.Join(errs...)
}

// protoName names p as ip-route(8) prints it.
func protoName(p netlink.RouteProtocol) string {
	switch p {
	case unix.RTPROT_KERNEL:
		return "kernel"
	case unix.RTPROT_BOOT:
		return "boot"
	case unix.RTPROT_STATIC:
		return "static"
	case unix.RTPROT_RA:
		return "ra"
	case unix.RTPROT_DHCP:
		return "dhcp"
	}
	return strconv.Itoa(int(p))
}

// routeSpec writes k as ip-route(8) arguments that select it.
func (r *Router) routeSpec(k netlink.Route) string {
	var b strings.Builder
	switch k.Type {
	case unix.RTN_UNICAST:
	case unix.RTN_UNREACHABLE:
		b.WriteString("unreachable ")
	case unix.RTN_BLACKHOLE:
		b.WriteString("blackhole ")
	case unix.RTN_PROHIBIT:
		b.WriteString("prohibit ")
	case unix.RTN_THROW:
		b.WriteString("throw ")
	default:
		fmt.Fprintf(&b, "type %d ", k.Type)
	}
	if d := dstOf(k); d.Bits() == 0 {
		b.WriteString("default")
	} else {
		b.WriteString(d.String())
	}
	if k.Gw != nil {
		fmt.Fprintf(&b, " via %s", k.Gw)
	}
	if k.LinkIndex > 0 {
		if l, err := r.h.LinkByIndex(k.LinkIndex); err == nil {
			fmt.Fprintf(&b, " dev %s", l.Attrs().Name)
		}
	}
	if k.Table == tableMain {
		b.WriteString(" table main")
	} else {
		fmt.Fprintf(&b, " table %d", k.Table)
	}
	fmt.Fprintf(&b, " metric %d", k.Priority)
	return b.String()
}

// linkIndex returns the interface index of name, or 0 if it does not exist.
func (r *Router) linkIndex(name string) (int, error) {
	l, err := r.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return 0, nil
		}
		return 0, r.opErr("look up interface", name, err)
	}
	return l.Attrs().Index, nil
}

func (r *Router) ownedRules() ([]netlink.Rule, error) {
	all, err := r.h.RuleList(netlink.FAMILY_ALL)
	if err != nil {
		return nil, r.opErr("list rules", "", err)
	}
	var out []netlink.Rule
	for _, k := range all {
		if k.Protocol == Protocol {
			out = append(out, k)
		}
	}
	return out, nil
}

func (r *Router) ownedRoutes() ([]netlink.Route, error) {
	filter := &netlink.Route{Table: unix.RT_TABLE_UNSPEC, Protocol: Protocol}
	rs, err := r.h.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return nil, r.opErr("list routes", "", err)
	}
	return rs, nil
}

func (r *Router) opErr(op, item string, err error) error {
	if item != "" {
		op += " (" + item + ")"
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("policyroute: %s: %w: run fobgw as root or with CAP_NET_ADMIN", op, err)
	}
	return fmt.Errorf("policyroute: %s: %w", op, err)
}

func nlRule(w Rule) *netlink.Rule {
	nr := netlink.NewRule()
	nr.Family = familyOf(w.Src)
	nr.Priority = w.Priority
	if w.Src.Bits() > 0 {
		nr.Src = netaddr.IPNet(w.Src) // else from all: the kernel keeps no source
	}
	nr.IifName = w.IifName
	nr.Table = w.Table
	nr.Protocol = Protocol
	if w.Mark != 0 {
		nr.Mark = w.Mark
		mask := w.Mark
		nr.Mask = &mask
	}
	return nr
}

func nlRoute(w Route, tunIdx int) *netlink.Route {
	nr := &netlink.Route{
		Family:   familyOf(w.Dst),
		Table:    w.Table,
		Dst:      netaddr.IPNet(w.Dst),
		Priority: w.Metric,
		Protocol: Protocol,
	}
	if w.Unreachable {
		nr.Type = unix.RTN_UNREACHABLE
	} else {
		nr.Type = unix.RTN_UNICAST
		nr.Scope = netlink.SCOPE_LINK
		nr.LinkIndex = tunIdx
	}
	return nr
}

func ruleMatches(k netlink.Rule, w Rule) bool {
	return k.Protocol == Protocol &&
		k.Family == familyOf(w.Src) &&
		k.Priority == w.Priority &&
		k.Table == w.Table &&
		k.IifName == w.IifName &&
		k.OifName == "" && k.Dst == nil && k.Mark == w.Mark && sameMask(k.Mask, w.Mark) && !k.Invert &&
		sameSrc(k.Src, w.Src)
}

// sameSrc reports whether a rule's source is src; the kernel reports a rule
// from all (src 0.0.0.0/0 or ::/0) without one.
func sameSrc(k *net.IPNet, src netip.Prefix) bool {
	if k == nil {
		return src.Bits() == 0
	}
	return netaddr.Prefix(k) == src
}

// sameMask reports whether a rule's fwmark mask is the one fobgw gives a
// rule with mark: none without a mark, the mark itself with one.
func sameMask(m *uint32, mark uint32) bool {
	if mark == 0 {
		return m == nil || *m == 0
	}
	return m != nil && *m == mark
}

// sameSlot reports whether k and w share table, destination and metric: the
// kernel holds one route per slot unless asked to append (EEXIST).
func sameSlot(k netlink.Route, w Route) bool {
	return k.Table == w.Table && k.Family == familyOf(w.Dst) && dstOf(k) == w.Dst && k.Priority == w.Metric
}

func routeMatches(k netlink.Route, w Route, tunIdx int) bool {
	if k.Protocol != Protocol || k.Table != w.Table || k.Priority != w.Metric ||
		k.Family != familyOf(w.Dst) || dstOf(k) != w.Dst {
		return false
	}
	if w.Unreachable {
		return k.Type == unix.RTN_UNREACHABLE
	}
	return k.Type == unix.RTN_UNICAST && tunIdx != 0 && k.LinkIndex == tunIdx &&
		k.Gw == nil && len(k.MultiPath) == 0
}

func familyOf(p netip.Prefix) int {
	if p.Addr().Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

func dstOf(k netlink.Route) netip.Prefix {
	if k.Dst == nil {
		if k.Family == netlink.FAMILY_V6 {
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	return netaddr.Prefix(k.Dst)
}

func isGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}

func describeRoute(k netlink.Route) string {
	kind := ""
	if k.Type == unix.RTN_UNREACHABLE {
		kind = "unreachable "
	}
	return fmt.Sprintf("%s%s table %d metric %d ifindex %d", kind, dstOf(k), k.Table, k.Priority, k.LinkIndex)
}

func describeRule(k netlink.Rule) string {
	src := "all"
	if k.Src != nil {
		src = k.Src.String()
	}
	mark := ""
	if k.Mark != 0 {
		mark = fmt.Sprintf(" fwmark %#x", k.Mark)
	}
	return fmt.Sprintf("from %s iif %s%s lookup %d priority %d", src, k.IifName, mark, k.Table, k.Priority)
}
