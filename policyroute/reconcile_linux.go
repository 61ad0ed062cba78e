package policyroute

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// reconcile brings the system to the state. Without full it leaves out
// everything that names the tunnel. Order: the kill switch, then the rules,
// then the tunnel routes, then stale entries out, so that at no point LAN
// traffic can fall through to the main table: a rule never points at a table
// without its kill switch, and a route of ours from another configuration is
// replaced in place rather than deleted and added again. Routes of others
// where only fobgw's belong are reported (ErrForeignRoute) after everything
// else is in place, never deleted.
func (r *Router) reconcile(full bool) (changed int, err error) {
	d, err := r.diff()
	if err != nil {
		return 0, err
	}
	tunnelRoutes := full && d.lanIdx != 0 && d.tunIdx != 0
	if err := r.addMissing(d, tunnelRoutes); err != nil {
		return d.changed, err
	}
	if err := r.removeStale(d, tunnelRoutes); err != nil {
		return d.changed, err
	}
	if err := r.ensureSysctls(d, false); err != nil {
		return d.changed, err
	}
	conflictErr := errors.Join(d.conflictErrs...)
	if !full {
		return d.changed, conflictErr
	}
	if err := r.missingInterface(d); err != nil {
		return d.changed, errors.Join(err, conflictErr)
	}
	if err := r.ensureSysctls(d, true); err != nil {
		return d.changed, errors.Join(err, conflictErr)
	}
	return d.changed, conflictErr
}

// drift is what the system lacks and holds beyond the state, found by diff
// and worked off by reconcile.
type drift struct {
	tunIdx, lanIdx int // 0: the interface does not exist

	ruleOK      []bool // state.Rules[i] is in place (or dealt with)
	routeOK     []bool // state.Routes[i] is in place (or dealt with)
	staleRules  []netlink.Rule
	staleRoutes []netlink.Route
	foreign     []netlink.Route // routes of others where only fobgw's belong

	conflicts    map[string]bool // foreign routes reported, by error text
	conflictErrs []error
	changed      int // items added, deleted or rewritten
}

// report notes the foreign route k once.
func (d *drift) report(r *Router, k netlink.Route) {
	if e := r.foreignErr(k); !d.conflicts[e.Error()] {
		d.conflicts[e.Error()] = true
		d.conflictErrs = append(d.conflictErrs, e)
	}
}

// diff compares the rules and routes fobgw owns, in every table, with the
// state, and lists the routes of others in fobgw's place.
func (r *Router) diff() (*drift, error) {
	d := &drift{conflicts: make(map[string]bool)}
	var err error
	if d.tunIdx, err = r.linkIndex(r.cfg.TunnelInterface); err != nil {
		return nil, err
	}
	if d.lanIdx, err = r.linkIndex(r.cfg.LANInterface); err != nil {
		return nil, err
	}
	rules, err := r.ownedRules()
	if err != nil {
		return nil, err
	}
	d.ruleOK = make([]bool, len(r.state.Rules))
	d.staleRules = match(rules, r.state.Rules, d.ruleOK, ruleMatches) // other config, or duplicates
	routes, foreign, onLink, err := r.listRoutes(d.tunIdx)
	if err != nil {
		return nil, err
	}
	d.foreign = foreign
	for _, k := range foreign {
		d.report(r, k)
	}
	d.routeOK = make([]bool, len(r.state.Routes))
	// A home network that is also a network the gateway is attached to (the
	// hotel's Wi-Fi in the same 192.168.1.0/24 as home): the gateway needs
	// that network itself, its way out and the local ISP's resolver are on
	// it. fobgw's routes there that would win over the direct route (a
	// metric not above it: the tunnel's 100 over a DHCP client's 600) are
	// left out, and one of ours there is stale; those that lose to it stay
	// (the kill switch's 4000), and take over the moment the gateway leaves
	// that network, until Repair puts the rest back.
	var prefixes []netip.Prefix
	for i, w := range r.state.Routes {
		m, ok := onLink[w.Dst]
		if !ok || w.Table != tableMain {
			continue
		}
		if !slices.Contains(prefixes, w.Dst) {
			prefixes = append(prefixes, w.Dst)
		}
		if w.Metric <= m {
			d.routeOK[i] = true
		}
	}
	d.staleRoutes = match(routes, r.state.Routes, d.routeOK, func(k netlink.Route, w Route) bool { return routeMatches(k, w, d.tunIdx) })
	r.mu.Lock()
	r.onLink = prefixes
	r.mu.Unlock()
	return d, nil
}

// match pairs each of have with the first want it equals that is not
// taken yet, marking it in taken, and returns the have left unpaired.
func match[K, W any](have []K, want []W, taken []bool, equal func(K, W) bool) (unpaired []K) {
next:
	for _, k := range have {
		for i, w := range want {
			if !taken[i] && equal(k, w) {
				taken[i] = true
				continue next
			}
		}
		unpaired = append(unpaired, k)
	}
	return unpaired
}

// addMissing adds what the state lacks: the routes that need no tunnel
// (the kill switch), the rules, then, with tunnelRoutes, the tunnel routes.
func (r *Router) addMissing(d *drift, tunnelRoutes bool) error {
	if err := r.addRoutes(d, false); err != nil {
		return err
	}
	for i, w := range r.state.Rules {
		if d.ruleOK[i] {
			continue
		}
		if err := r.h.RuleAdd(nlRule(w)); err != nil {
			if !errors.Is(err, unix.EEXIST) {
				return r.opErr("add rule", w.String(), err)
			}
		} else {
			d.changed++
		}
	}
	if tunnelRoutes {
		return r.addRoutes(d, true)
	}
	return nil
}

// addRoutes adds the missing routes that need the tunnel, or those that do
// not. A stale route of ours in the same slot is replaced in one step.
func (r *Router) addRoutes(d *drift, tunnel bool) error {
	for i, w := range r.state.Routes {
		if d.routeOK[i] || w.NeedsTunnel() != tunnel {
			continue
		}
		d.routeOK[i] = true
		add, what := r.h.RouteAdd, "add route"
		j := slices.IndexFunc(d.staleRoutes, func(k netlink.Route) bool { return sameSlot(k, w) })
		if j >= 0 && !slices.ContainsFunc(d.foreign, func(k netlink.Route) bool { return sameSlot(k, w) }) {
			// Ours, from another configuration: replace it in one step.
			add, what = r.h.RouteReplace, "replace route"
			d.staleRoutes = slices.Delete(d.staleRoutes, j, j+1)
		}
		err := add(nlRoute(w, d.tunIdx))
		switch {
		case err == nil:
			d.changed++
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
				d.report(r, k)
			}
		default:
			return r.opErr(what, w.String(), err)
		}
	}
	return nil
}

// removeStale deletes the stale routes, then the stale rules. A route of
// ours in the slot of a tunnel route not added this time stays until Apply
// replaces it in place.
func (r *Router) removeStale(d *drift, tunnelRoutes bool) error {
	for _, k := range d.staleRoutes {
		if !tunnelRoutes && slices.ContainsFunc(r.state.Routes, func(w Route) bool { return w.NeedsTunnel() && sameSlot(k, w) }) {
			continue
		}
		if err := r.h.RouteDel(&k); err != nil && !isGone(err) {
			return r.opErr("delete stale route", describeRoute(k), err)
		}
		d.changed++
	}
	for _, k := range d.staleRules {
		if err := r.h.RuleDel(&k); err != nil && !isGone(err) {
			return r.opErr("delete stale rule", describeRule(k), err)
		}
		d.changed++
	}
	return nil
}

// ensureSysctls writes the sysctls that need the tunnel, or those that do
// not, where they differ.
func (r *Router) ensureSysctls(d *drift, tunnel bool) error {
	for _, s := range r.state.Sysctls {
		if s.NeedsTunnel() != tunnel {
			continue
		}
		n, err := r.ensureSysctl(s)
		d.changed += n
		if err != nil {
			return err
		}
	}
	return nil
}

// missingInterface says which interface the tunnel routes wait for, and
// whether the kill switch holds meanwhile; nil when both exist.
func (r *Router) missingInterface(d *drift) error {
	ks := "; there is no kill switch (KillSwitch is off)"
	if r.cfg.KillSwitch {
		ks = "; the kill switch is in place"
	}
	if d.lanIdx == 0 {
		return fmt.Errorf("policyroute: %w: LAN interface %q does not exist in this network namespace: create the bridge first (e.g. ip link add %s type bridge) or set LANInterface to an existing interface%s",
			ErrNoInterface, r.cfg.LANInterface, r.cfg.LANInterface, ks)
	}
	if d.tunIdx == 0 {
		return fmt.Errorf("policyroute: %w: tunnel interface %q does not exist (it vanishes when the process holding the TUN exits): create the tunnel before adding its routes%s",
			ErrNoInterface, r.cfg.TunnelInterface, ks)
	}
	return nil
}

// listRoutes returns the routes carrying Protocol, in every table, and the
// routes of others where only fobgw's belong: every route in the LAN's
// table, and main-table routes for exactly a home network at a metric not
// above fobgw's highest for it (they win over the tunnel route or, with the
// tunnel gone, over the kill switch), unless they only lead into the tunnel
// or straight onto another interface. Those direct routes are the home
// networks the gateway is attached to: onLink maps each to the lowest
// metric of such a route.
func (r *Router) listRoutes(tunIdx int) (owned, foreign []netlink.Route, onLink map[netip.Prefix]int, err error) {
	all, err := r.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, nil, nil, r.opErr("list routes", "", err)
	}
	home := make(map[netip.Prefix]int) // destination -> fobgw's highest metric
	for _, w := range r.state.Routes {
		if w.Table == tableMain {
			home[w.Dst] = max(home[w.Dst], w.Metric)
		}
	}
	onLink = make(map[netip.Prefix]int)
	for _, k := range all {
		switch {
		case k.Protocol == Protocol:
			owned = append(owned, k)
		case k.Table == r.cfg.Table:
			foreign = append(foreign, k)
		case k.Table == tableMain:
			m, ok := home[dstOf(k)]
			if !ok {
				continue
			}
			// No scope test: the kernel reports every IPv6 route with
			// scope universe.
			noGateway := k.Gw == nil && len(k.MultiPath) == 0 && k.LinkIndex != 0
			switch {
			case noGateway && k.LinkIndex == tunIdx: // into the tunnel: fine
			case noGateway && k.Type == unix.RTN_UNICAST:
				if lo, seen := onLink[dstOf(k)]; !seen || k.Priority < lo {
					onLink[dstOf(k)] = k.Priority
				}
			case k.Priority <= m:
				foreign = append(foreign, k)
			}
		}
	}
	return owned, foreign, onLink, nil
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
