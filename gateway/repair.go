package gateway

import (
	"errors"
	"slices"
	"strings"
	"time"
)

// RepairInterval is how often Run compares the routing state with the
// desired one and repairs drift.
const RepairInterval = 10 * time.Second

// repairRoutes repairs drift in the routing state and the masquerade
// table, counts the repairs and logs a changed error once.
func (g *gateway) repairRoutes() {
	n, err := g.router.Repair()
	g.noteHomeOnLink()
	if n > 0 {
		g.repairs.Add(uint64(n))
		g.log.Warn("routing drift repaired", "items", n)
	}
	if g.cfg.Masquerade || breakoutEnabled(g.cfg) {
		// Off, start removed any leftover table; a kernel without nf_tables
		// must then not make every round an error.
		drift, nerr := g.nat.Repair()
		if len(drift) > 0 {
			g.repairs.Add(uint64(len(drift)))
			g.log.Warn("masquerade drift repaired", "items", len(drift), "drift", strings.Join(drift, "; "))
		}
		err = errors.Join(err, nerr)
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	g.mu.Lock()
	changed := msg != g.repairErr
	g.repairErr = msg
	g.mu.Unlock()
	if changed && err != nil {
		g.log.Error("routing repair failed", "err", err)
	}
}

// noteHomeOnLink logs when a home network becomes, or stops being, a network
// the gateway is attached to (the local network uses home's addresses), as
// the router found at its last Apply or Repair.
func (g *gateway) noteHomeOnLink() {
	now := g.router.HomeNetworksOnLink()
	g.mu.Lock()
	before := g.homeOnLink
	g.homeOnLink = now
	g.mu.Unlock()
	if slices.Equal(now, before) {
		return
	}
	if len(now) > 0 {
		g.log.Warn("a home network is also the local network: the gateway reaches these addresses there, not at home; the LAN still reaches home's through the tunnel",
			"home_networks", now)
		return
	}
	g.log.Info("no home network is the local network any more: the gateway reaches home's through the tunnel again", "home_networks", g.cfg.HomeNetworks)
}
