package policyroute

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/fobgw/fobgw/internal/netaddr"
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

// reconcile brings the system to the state. Without full it leaves out
// everything that names the tunnel. Order: the kill switch, then the rules,
// then the tunnel routes, then stale entries out, so that at no point LAN
// traffic can fall through to the main table: a rule never points at a table
// without its kill switch, and a route of ours from another configuration is
// replaced in place rather than deleted and added again. Routes of others
// where only fobgw's belong are reported (ErrForeignRoute) after everything
// else is in place, never deleted.
func (r *Router) reconcile(full bool) (changed int, err error) {
	tunIdx, err := r.linkIndex(r.cfg.TunnelInterface)
	if err != nil {
		return 0, err
	}
	lanIdx, err := r.linkIndex(r.cfg.LANInterface)
	if err != nil {
		return 0, err
	}

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

	// Routes: compare with everything we own, in every table.
	routes, foreign, err := r.listRoutes(tunIdx)
	if err != nil {
		return 0, err
	}
	conflicts := make(map[string]bool)
	var conflictErrs []error
	report := func(k netlink.Route) {
		if e := r.foreignErr(k); !conflicts[e.Error()] {
			conflicts[e.Error()] = true
			conflictErrs = append(conflictErrs, e)
		}
	}
	for _, k := range foreign {
		report(k)
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
			wantRoute[i] = true
			add, what := r.h.RouteAdd, "add route"
			j := slices.IndexFunc(staleRoutes, func(k netlink.Route) bool { return sameSlot(k, w) })
			if j >= 0 && !slices.ContainsFunc(foreign, func(k netlink.Route) bool { return sameSlot(k, w) }) {
				// Ours, from another configuration: replace it in one step.
				add, what = r.h.RouteReplace, "replace route"
				staleRoutes = slices.Delete(staleRoutes, j, j+1)
			}
			err := add(nlRoute(w, tunIdx))
			switch {
			case err == nil:
				changed++
			case errors.Is(err, unix.ENETDOWN):
				return fmt.Errorf("policyroute: %s (%s): %w: interface %q is down: set it up (ip link set %s up) before Apply",
					what, w, err, w.Dev, w.Dev)
			case errors.Is(err, unix.EEXIST):
				// Success only if the route in the way is ours (a
				// concurrent run); another's is reported, not replaced.
				k, found, lerr := r.routeInSlot(w)
				if lerr != nil {
					return lerr
				}
				if !found {
					return r.opErr(what, w.String(), err)
				}
				if k.Protocol != Protocol {
					report(k)
				}
			default:
				return r.opErr(what, w.String(), err)
			}
		}
		return nil
	}
	if err := addRoutes(false); err != nil {
		return changed, err
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

	tunnelRoutes := full && lanIdx != 0 && tunIdx != 0
	if tunnelRoutes {
		if err := addRoutes(true); err != nil {
			return changed, err
		}
	}

	// Stale entries go last. A route of ours in the slot of a tunnel route
	// not added this time stays until Apply replaces it in place.
	for _, k := range staleRoutes {
		if !tunnelRoutes && slices.ContainsFunc(r.state.Routes, func(w Route) bool { return w.NeedsTunnel() && sameSlot(k, w) }) {
			continue
		}
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

	conflictErr := errors.Join(conflictErrs...)
	if !full {
		return changed, conflictErr
	}
	ks := "; there is no kill switch (KillSwitch is off)"
	if r.cfg.KillSwitch {
		ks = "; the kill switch is in place"
	}
	if lanIdx == 0 {
		return changed, errors.Join(fmt.Errorf("policyroute: %w: LAN interface %q does not exist in this network namespace: create the bridge first (e.g. ip link add %s type bridge) or set LANInterface to an existing interface%s",
			ErrNoInterface, r.cfg.LANInterface, r.cfg.LANInterface, ks), conflictErr)
	}
	if tunIdx == 0 {
		return changed, errors.Join(fmt.Errorf("policyroute: %w: tunnel interface %q does not exist (it vanishes when the process holding the TUN exits): create the tunnel before adding its routes%s",
			ErrNoInterface, r.cfg.TunnelInterface, ks), conflictErr)
	}
	for _, s := range r.state.Sysctls {
		if !s.NeedsTunnel() {
			continue
		}
		n, err := r.ensureSysctl(s)
		changed += n
		if err != nil {
			return changed, errors.Join(err, conflictErr)
		}
	}
	return changed, conflictErr
}

// listRoutes returns the routes carrying Protocol, in every table, and the
// routes of others where only fobgw's belong: every route in the LAN's
// table, and main-table routes for exactly a home network at a metric not
// above fobgw's highest for it (they win over the tunnel route or, with the
// tunnel gone, over the kill switch), unless they only lead into the tunnel.
func (r *Router) listRoutes(tunIdx int) (owned, foreign []netlink.Route, err error) {
	all, err := r.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, nil, r.opErr("list routes", "", err)
	}
	home := make(map[netip.Prefix]int) // destination -> fobgw's highest metric
	for _, w := range r.state.Routes {
		if w.Table == tableMain {
			home[w.Dst] = max(home[w.Dst], w.Metric)
		}
	}
	for _, k := range all {
		switch {
		case k.Protocol == Protocol:
			owned = append(owned, k)
		case k.Table == r.cfg.Table:
			foreign = append(foreign, k)
		case k.Table == tableMain:
			m, ok := home[dstOf(k)]
			intoTunnel := tunIdx != 0 && k.LinkIndex == tunIdx && k.Gw == nil && len(k.MultiPath) == 0
			if ok && k.Priority <= m && !intoTunnel {
				foreign = append(foreign, k)
			}
		}
	}
	return owned, foreign, nil
}

// routeInSlot returns the route that holds w's slot (table, destination,
// metric), the one that makes adding w fail with EEXIST.
func (r *Router) routeInSlot(w Route) (netlink.Route, bool, error) {
	rs, err := r.h.RouteListFiltered(familyOf(w.Dst), &netlink.Route{Table: w.Table}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return netlink.Route{}, false, r.opErr("list routes", fmt.Sprintf("table %d", w.Table), err)
	}
	for _, k := range rs {
		if sameSlot(k, w) {
			return k, true, nil
		}
	}
	return netlink.Route{}, false, nil
}

// foreignErr says why k, a route of another program, is in the way and how
// to get it out of the way.
func (r *Router) foreignErr(k netlink.Route) error {
	spec := r.routeSpec(k)
	fam := ""
	if k.Family == netlink.FAMILY_V6 {
		fam = "-6 "
	}
	if k.Table == r.cfg.Table {
		return fmt.Errorf("policyroute: %w: \"%s proto %s\" is in table %d, which belongs to fobgw: LAN traffic can take it instead of fobgw's tunnel route or kill switch; fobgw does not delete routes it did not make: delete it (ip %sroute del %s) or set Table to a table nothing else uses",
			ErrForeignRoute, spec, protoName(k.Protocol), k.Table, fam, spec)
	}
	dst := dstOf(k)
	m := 0
	for _, w := range r.state.Routes {
		if w.Table == tableMain && w.Dst == dst {
			m = max(m, w.Metric)
		}
	}
	return fmt.Errorf("policyroute: %w: \"%s proto %s\" leads to the home network %s at a metric not above fobgw's (%d): the gateway's own traffic to it can take this route instead of the tunnel or the kill switch; fobgw does not delete routes it did not make: delete it (ip %sroute del %s) or re-add it with a metric above %d",
		ErrForeignRoute, spec, protoName(k.Protocol), dst, m, fam, spec, m)
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
	nr.Src = netaddr.IPNet(w.Src)
	nr.IifName = w.IifName
	nr.Table = w.Table
	nr.Protocol = Protocol
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
		k.OifName == "" && k.Dst == nil && k.Mark == 0 && k.Mask == nil && !k.Invert &&
		k.Src != nil && netaddr.Prefix(k.Src) == w.Src
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
	return fmt.Sprintf("from %s iif %s lookup %d priority %d", src, k.IifName, k.Table, k.Priority)
}
