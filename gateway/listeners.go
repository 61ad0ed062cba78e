package gateway

import (
	"github.com/fobgw/fobgw/statuspage"
	"github.com/fobgw/fobgw/wgexport"
)

// startListeners opens the control socket, the metrics listener and the
// status page.
func (g *gateway) startListeners(opt Options, undo *undoStack) error {
	ctl, err := listenControl(ControlSocket(opt.RunDir, g.cfg.Name), controlHandler{status: g.status, portal: g.portalRequest()}, g.log)
	if err != nil {
		return err
	}
	undo.push(ctl.close)
	if g.cfg.MetricsListen != "" {
		reg, err := newRegistry(g.status, g.fwd.Collector(), newRoomDropsCollector(), wgexport.NewCollector(g.cfg.Name, g.tun.dev.IpcGet))
		if err != nil {
			return err
		}
		ms, err := listenMetrics(g.cfg.MetricsListen, reg, g.log)
		if err != nil {
			return err
		}
		undo.push(ms.close)
	}
	if g.cfg.StatusListen.IsValid() {
		sp, err := statuspage.Listen(g.cfg.StatusListen.String(), g.pageSnapshot, statuspage.Options{Logger: g.log.With("part", "page"), Login: g.pageLogin()})
		if err != nil {
			return err
		}
		undo.push(sp.Close)
	}
	return nil
}

// pageSnapshot is what the status page shows, read from the same Status
// as `fobgw status` and the metrics.
func (g *gateway) pageSnapshot() statuspage.Snapshot {
	s := g.status()
	return statuspage.Snapshot{
		Name: s.Name, Time: s.Time,
		TunnelUp: s.TunnelUp, LastHandshake: s.LastHandshake,
		Endpoint: s.Endpoint, EndpointName: s.EndpointName,
		RxBytes: s.RxBytes, TxBytes: s.TxBytes,
		AtHome: s.AtHome, AwayReason: s.AwayReason,
		DNS: statuspage.DNS{
			Answers:   s.DNS.OK + s.DNS.NXDomain,
			CacheHits: s.DNS.CacheHits,
			Failures:  s.DNS.ServFail + s.DNS.Dropped,
		},
		KillSwitch:      g.cfg.KillSwitch,
		RouteRepairs:    s.RouteRepairs,
		EndpointChanges: s.EndpointChanges,
		Portal:          pagePortal(s.Portal),
		Breakout:        pageBreakout(s),
	}
}
