package policyroute

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Router applies a State through one netlink handle. Its methods are not
// safe for concurrent use; the gateway calls them from one goroutine.
type Router struct {
	h          *netlink.Handle
	cfg        Config
	state      State
	sysctlRoot string
	ns         netns.NsHandle // -1: write sysctls from the calling thread
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

// ApplyKillSwitch installs what needs no tunnel interface: the LAN rules,
// with Config.KillSwitch the unreachable routes (table defaults and home
// fallbacks), and the forwarding sysctls. Call it before the tunnel exists.
// It also deletes fobgw-owned routes and rules the configuration no longer
// asks for. Without Config.KillSwitch, LAN traffic falls through to the main
// table until Apply adds the tunnel routes.
func (r *Router) ApplyKillSwitch() error {
	_, err := r.reconcile(false)
	return err
}

// Apply installs the whole state; the tunnel and LAN interfaces must exist
// (ErrNoInterface otherwise, after the kill switch is in place). It is
// idempotent: it adds only what is missing, deletes fobgw-owned entries that
// differ from the configuration, leaves everything else alone, and treats
// EEXIST as success.
func (r *Router) Apply() error {
	_, err := r.reconcile(true)
	return err
}

// Check compares the system with the state, repairs any drift (a flushed
// rule or table, a changed sysctl, stale fobgw entries) and returns the
// number of items it added, deleted or rewrote; 0 means no drift. If the
// tunnel interface is gone it repairs the kill switch and returns an error
// wrapping ErrNoInterface.
func (r *Router) Check() (repaired int, err error) {
	return r.reconcile(true)
}

// Remove deletes every route and rule carrying Protocol, whatever
// configuration installed it; entries of others are left alone. With
// keepKillSwitch and Config.KillSwitch, fobgw's rules and unreachable routes
// stay, so the LAN remains cut off from the local ISP while fobgw is down.
// Sysctls are not restored (see the package documentation).
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

// reconcile brings the system to the state. Without full it leaves out
// everything that names the tunnel. Order: kill switch and rules first,
// then stale entries out, then the tunnel routes, so that at no point LAN
// traffic can fall through to the main table.
func (r *Router) reconcile(full bool) (changed int, err error) {
	tunIdx, err := r.linkIndex(r.cfg.TunnelInterface)
	if err != nil {
		return 0, err
	}
	lanIdx, err := r.linkIndex(r.cfg.LANInterface)
	if err != nil {
		return 0, err
	}

	// Rules.
	rules, err := r.ownedRules()
	if err != nil {
		return 0, err
	}
	wantRule := make([]bool, len(r.state.Rules))
	var staleRules []netlink.Rule
	for _, k := range rules {
		matched := false
		for i, w := range r.state.Rules {
			if !wantRule[i] && ruleMatches(k, w) {
				wantRule[i], matched = true, true
				break
			}
		}
		if !matched {
			staleRules = append(staleRules, k) // other config, or a duplicate
		}
	}
	for i, w := range r.state.Rules {
		if wantRule[i] {
			continue
		}
		if err := r.h.RuleAdd(nlRule(w)); err != nil {
			if !errors.Is(err, unix.EEXIST) {
				return changed, r.opErr("add rule", w.String(), err)
			}
		} else {
			changed++
		}
	}

	// Routes: compare with everything we own, in every table.
	routes, err := r.ownedRoutes()
	if err != nil {
		return changed, err
	}
	wantRoute := make([]bool, len(r.state.Routes))
	var staleRoutes []netlink.Route
	for _, k := range routes {
		matched := false
		for i, w := range r.state.Routes {
			if !wantRoute[i] && routeMatches(k, w, tunIdx) {
				wantRoute[i], matched = true, true
				break
			}
		}
		if !matched {
			staleRoutes = append(staleRoutes, k)
		}
	}
	addRoutes := func(tunnel bool) error {
		for i, w := range r.state.Routes {
			if wantRoute[i] || w.NeedsTunnel() != tunnel {
				continue
			}
			if err := r.h.RouteAdd(nlRoute(w, tunIdx)); err != nil {
				if errors.Is(err, unix.ENETDOWN) {
					return fmt.Errorf("policyroute: add route (%s): %w: interface %q is down: set it up (ip link set %s up) before Apply",
						w, err, w.Dev, w.Dev)
				}
				if !errors.Is(err, unix.EEXIST) {
					return r.opErr("add route", w.String(), err)
				}
			} else {
				changed++
			}
			wantRoute[i] = true
		}
		return nil
	}
	if err := addRoutes(false); err != nil {
		return changed, err
	}

	// Stale entries go after the kill switch is in, before the tunnel routes
	// that may share their table, destination and metric.
	for _, k := range staleRoutes {
		if err := r.h.RouteDel(&k); err != nil && !isGone(err) {
			return changed, r.opErr("delete stale route", describeRoute(k), err)
		}
		changed++
	}
	for _, k := range staleRules {
		if err := r.h.RuleDel(&k); err != nil && !isGone(err) {
			return changed, r.opErr("delete stale rule", describeRule(k), err)
		}
		changed++
	}

	for _, s := range r.state.Sysctls {
		if s.NeedsTunnel() {
			continue
		}
		n, err := r.ensureSysctl(s)
		changed += n
		if err != nil {
			return changed, err
		}
	}

	if !full {
		return changed, nil
	}
	ks := "; there is no kill switch (KillSwitch is off)"
	if r.cfg.KillSwitch {
		ks = "; the kill switch is in place"
	}
	if lanIdx == 0 {
		return changed, fmt.Errorf("policyroute: %w: LAN interface %q does not exist in this network namespace: create the bridge first (e.g. ip link add %s type bridge) or set LANInterface to an existing interface%s",
			ErrNoInterface, r.cfg.LANInterface, r.cfg.LANInterface, ks)
	}
	if tunIdx == 0 {
		return changed, fmt.Errorf("policyroute: %w: tunnel interface %q does not exist (it vanishes when the process holding the TUN exits): create the tunnel before adding its routes%s",
			ErrNoInterface, r.cfg.TunnelInterface, ks)
	}
	if err := addRoutes(true); err != nil {
		return changed, err
	}
	for _, s := range r.state.Sysctls {
		if !s.NeedsTunnel() {
			continue
		}
		n, err := r.ensureSysctl(s)
		changed += n
		if err != nil {
			return changed, err
		}
	}
	return changed, nil
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

// ensureSysctl writes s if it differs and reports whether it did.
func (r *Router) ensureSysctl(s Sysctl) (int, error) {
	path := filepath.Join(r.sysctlRoot, s.path)
	var n int
	err := r.inNS(func() error {
		cur, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(cur)) == s.Value {
			return nil
		}
		if err := os.WriteFile(path, []byte(s.Value+"\n"), 0o644); err != nil {
			return err
		}
		n = 1
		return nil
	})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && s.NeedsTunnel() {
			return n, fmt.Errorf("policyroute: set %s: %w: %s is missing, the tunnel interface %q is gone",
				s.Key, ErrNoInterface, path, r.cfg.TunnelInterface)
		}
		if errors.Is(err, os.ErrNotExist) {
			return n, fmt.Errorf("policyroute: set %s: %w: this kernel has no such setting (is IPv6 disabled? then leave IPv6 prefixes out of LAN)", s.Key, err)
		}
		return n, r.opErr("set sysctl", s.String(), err)
	}
	return n, nil
}

// inNS runs fn on a thread in r.ns, or on the calling thread without WithNetNS.
func (r *Router) inNS(fn func() error) error {
	if r.ns == -1 {
		return fn()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current network namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(r.ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace for sysctls: %w", err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// The thread stays locked and dies with the goroutine.
		return errors.Join(ferr, fmt.Errorf("restore network namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

func nlRule(w Rule) *netlink.Rule {
	nr := netlink.NewRule()
	nr.Family = familyOf(w.Src)
	nr.Priority = w.Priority
	nr.Src = ipNet(w.Src)
	nr.IifName = w.IifName
	nr.Table = w.Table
	nr.Protocol = Protocol
	return nr
}

func nlRoute(w Route, tunIdx int) *netlink.Route {
	nr := &netlink.Route{
		Family:   familyOf(w.Dst),
		Table:    w.Table,
		Dst:      ipNet(w.Dst),
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
		k.OifName == "" && k.Dst == nil && k.Mark == 0 && k.Mask == nil && !k.Invert &&
		k.Src != nil && prefixOf(k.Src) == w.Src
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

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func prefixOf(n *net.IPNet) netip.Prefix {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}
	}
	ones, bits := n.Mask.Size()
	if a.Is4In6() {
		a = a.Unmap()
		if bits == 128 {
			ones -= 96
		}
	}
	return netip.PrefixFrom(a, ones)
}

func dstOf(k netlink.Route) netip.Prefix {
	if k.Dst == nil {
		if k.Family == netlink.FAMILY_V6 {
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	return prefixOf(k.Dst)
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
	return fmt.Sprintf("from %s iif %s lookup %d priority %d", src, k.IifName, k.Table, k.Priority)
}
