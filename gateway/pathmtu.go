package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"

	"github.com/fobgw/fobgw/config"
	"github.com/fobgw/fobgw/pmtud"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// Path MTU discovery (package pmtud) wired into the tunnel: the MTU key,
// the probe path, the Searcher that keeps the TUN's MTU at what the path
// carries, and its part of status.

// MTUStatus is the tunnel MTU's part of Status: the Searcher's snapshot,
// or the ceiling and why discovery is off (State "off").
type MTUStatus struct {
	pmtud.Status
	Off string `json:"off,omitempty"` // why path MTU discovery is off
}

// stateOff is MTUStatus.State when discovery does not run.
const stateOff pmtud.State = "off"

// pathMTU is the tunnel's path MTU discovery: pmtud's Device (the
// outermost tun.Device, the one wireguard-go is given), the trigger socket
// and the Searcher. When it measures again is remeasure's decision
// (remeasure.go). Its methods do nothing on a nil *pathMTU.
type pathMTU struct {
	dev     *pmtud.Device
	ceiling int
	name    string // the TUN
	off     string // why discovery is off; "" when on
	trig    net.Conn
	search  *pmtud.Searcher // nil until start, and when off
	log     *slog.Logger

	// hasEndpoint is closed once the peer has an endpoint: a probe sent
	// before would start a handshake that fails for want of one and holds
	// the next back for REKEY_TIMEOUT (5 s), delaying the tunnel.
	hasEndpoint chan struct{}
	once        sync.Once
}

// newPathMTU is path MTU discovery for cfg; the tunnel wraps its TUN in it
// (wrap) and starts it once the TUN is up (start).
func newPathMTU(cfg *config.Config, log *slog.Logger) *pathMTU {
	ceiling := cfg.MTUCeiling()
	return &pathMTU{
		ceiling: ceiling,
		name:    cfg.Name,
		off:     cfg.PMTUOff(),
		log:     log.With("part", "mtu"),

		hasEndpoint: make(chan struct{}),
	}
}

// wrap wraps td, the TUN with its other wrappers, in pmtud's Device, and
// returns it: the device wireguard-go is given.
func (p *pathMTU) wrap(td tun.Device) tun.Device {
	p.dev = pmtud.Wrap(td, p.ceiling, pmtud.DefaultFloor)
	return p.dev
}

// endpointSet tells the searcher that the peer has an endpoint: it starts
// probing then.
func (p *pathMTU) endpointSet() {
	if p != nil {
		p.once.Do(func() { close(p.hasEndpoint) })
	}
}

// start opens the trigger socket and makes the Searcher, once the TUN
// (interface index) is up with its address and the device runs.
func (p *pathMTU) start(cfg *config.Config, index int) error {
	if p.off != "" {
		p.log.Info("path MTU discovery off", "mtu", p.ceiling, "why", p.off)
		return nil
	}
	var err error
	if p.trig, err = pmtud.DialTrigger(cfg.Name, cfg.PMTUTarget()); err != nil {
		return err
	}
	p.search = pmtud.NewSearcher(pmtud.Config{Ceiling: p.ceiling, Active: p.dev.Active,
		OnChange: func(old, new int) { p.setMTU(index, old, new) }}, p.dev.Prober(p.trig))
	return nil
}

// setMTU sets the TUN's MTU (the kernel then answers larger DF packets
// from the LAN with "fragmentation needed", and mssclamp follows the TUN's
// MTU event) and logs the change once. Called from the Searcher's
// goroutine; the package's netlink handle opens a socket per request, so it
// does not share Run's.
func (p *pathMTU) setMTU(index, old, new int) {
	st := p.search.Status()
	if err := netlink.LinkSetMTU(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index}}, new); err != nil {
		p.log.Error("setting the tunnel MTU failed; it stays", "tun", p.name, "mtu", old, "want", new, "err", err)
		return
	}
	p.log.Info("tunnel MTU changed", "tun", p.name, "old", old, "new", new, "ceiling", st.Ceiling, "path", st.Path)
}

// run runs the Searcher, once the peer has an endpoint, and beside it
// watch (the underlay's), until ctx ends.
func (p *pathMTU) run(ctx context.Context, watch func(context.Context)) {
	if p == nil || p.search == nil {
		return
	}
	select {
	case <-ctx.Done():
		return
	case <-p.hasEndpoint:
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		watch(ctx)
	}()
	p.search.Run(ctx)
	wg.Wait()
}

// trigger asks for a full search round soon (remeasure decides when). It
// never blocks.
func (p *pathMTU) trigger() {
	if p != nil && p.search != nil {
		p.search.Trigger()
	}
}

// close closes the trigger socket.
func (p *pathMTU) close() {
	if p != nil && p.trig != nil {
		p.trig.Close()
	}
}

// status is the MTU part of Status.
func (p *pathMTU) status() *MTUStatus {
	if p == nil {
		return nil
	}
	if p.search == nil {
		return &MTUStatus{Status: pmtud.Status{Ceiling: p.ceiling, Effective: p.ceiling, State: stateOff}, Off: p.off}
	}
	return &MTUStatus{Status: p.search.Status()}
}

// watchUnderlay calls trigger when the underlay may have changed: a link
// other than the tunnel (tunName) changes its MTU or comes up, or a default
// route of the main table comes or goes. A failed subscription is logged and
// leaves the periodic rounds.
func watchUnderlay(ctx context.Context, tunName string, trigger func(), log *slog.Logger) {
	done := make(chan struct{})
	defer close(done)
	links := make(chan netlink.LinkUpdate, 16)
	routes := make(chan netlink.RouteUpdate, 16)
	// The links there are now come first, so that a link's first change
	// is known as one.
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{ListExisting: true}); err != nil {
		log.Warn("cannot watch the links; the path MTU is re-measured periodically only", "err", err)
		links = nil
	}
	if err := netlink.RouteSubscribe(routes, done); err != nil {
		log.Warn("cannot watch the routes; the path MTU is re-measured periodically only", "err", err)
		routes = nil
	}
	mtus := map[int]int{} // link index -> last MTU seen
	for {
		select {
		case <-ctx.Done():
			return
		case u, ok := <-links:
			if !ok {
				links = nil
				continue
			}
			if underlayLinkChanged(mtus, tunName, u) {
				log.Debug("underlay link changed; measuring the path again", "link", u.Attrs().Name, "mtu", u.Attrs().MTU)
				trigger()
			}
		case u, ok := <-routes:
			if !ok {
				routes = nil
				continue
			}
			if underlayRouteChanged(u) {
				log.Debug("default route changed; measuring the path again", "route", u.Route.String())
				trigger()
			}
		}
	}
}

// underlayLinkChanged reports whether u, a link update, may change the
// path under the tunnel: a link other than the tunnel (name) whose MTU
// differs from the last one seen (mtus, updated), or that came up.
func underlayLinkChanged(mtus map[int]int, name string, u netlink.LinkUpdate) bool {
	a := u.Attrs()
	if a == nil || a.Name == name {
		return false
	}
	if u.Header.Type == unix.RTM_DELLINK {
		delete(mtus, a.Index)
		return false
	}
	last, seen := mtus[a.Index]
	mtus[a.Index] = a.MTU
	cameUp := u.IfInfomsg.Change&unix.IFF_UP != 0 && u.IfInfomsg.Flags&unix.IFF_UP != 0
	return (seen && last != a.MTU) || cameUp
}

// underlayRouteChanged reports whether u adds or removes a default route of
// the main table (the gateway's own way out, and the tunnel's).
func underlayRouteChanged(u netlink.RouteUpdate) bool {
	if u.Table != unix.RT_TABLE_MAIN {
		return false
	}
	if u.Dst == nil {
		return true
	}
	ones, _ := u.Dst.Mask.Size()
	return ones == 0
}

// text is the status line for a person.
func (m *MTUStatus) text() string {
	if m.State == stateOff {
		return fmt.Sprintf("%d (path MTU discovery off: %s)", m.Effective, m.Off)
	}
	path := "not measured yet"
	if m.Path > 0 {
		path = strconv.Itoa(m.Path)
	}
	s := fmt.Sprintf("effective %d (ceiling %d, path %s), %s; %d probes, %d lost, %d changes", m.Effective, m.Ceiling, path, m.State, m.Probes, m.Lost, m.Changes)
	if m.Error != "" {
		s += "; last error: " + m.Error
	}
	return s
}
