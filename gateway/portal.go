package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fobgw/fobgw/config"
	"github.com/fobgw/fobgw/health"
	"github.com/fobgw/fobgw/masq"
	"github.com/fobgw/fobgw/portal"
	"github.com/fobgw/fobgw/statuspage"
	"github.com/vishvananda/netlink"
)

// Captive portals (package portal) wired in: the watcher that looks for a
// portal from the gateway's own WAN path while no handshake succeeds, the
// window that lets one device out directly to log in (its Marker: masq's
// device window and the forwarder's per-client upstream), the control
// socket's requests, the status page's button, and their part of Status and
// the metrics. With PortalCheck = off none of it runs.

// rejectAfter is WireGuard's REJECT_AFTER_TIME: a handshake older than this
// carries no more data, so the tunnel is down.
const rejectAfter = 180 * time.Second

// observeEvery is how often an open window is compared with the latest
// handshake and its end, and its marks renewed.
const observeEvery = time.Second

// captive is the gateway's captive-portal part; nil with PortalCheck = off.
type captive struct {
	check     portal.Check
	lan       []netip.Prefix
	watch     *portal.Watcher
	window    *portal.Window
	marker    *windowMarker
	guard     *portal.Guard
	handshake func() time.Time // the latest handshake, from the device: the same source at Open and Observe
	log       *slog.Logger

	refusalLogged atomic.Int64 // when (UnixNano) a refused button was last logged
}

// refusalLogGap is the least time between two log lines of refused button
// presses.
const refusalLogGap = 10 * time.Second

// newCaptive builds the captive-portal part for cfg, nil when PortalCheck is
// off. The window marks through nat and fwd; handshake reads the device.
func newCaptive(cfg *config.Config, resolvConf func() ([]netip.AddrPort, error), nat *masq.NAT, fwd clientDNS, handshake func() time.Time, log *slog.Logger) (*captive, error) {
	if !cfg.PortalCheck.On() {
		return nil, nil
	}
	res := health.NewDNSResolver(cfg.Resolver, resolvConf, health.ProbeTimeout)
	det := portal.NewDetector(portal.NewClient(res, 0), cfg.PortalCheck, 0)
	return buildCaptive(cfg, captiveDeps{detect: det.Detect, nat: nat, fwd: fwd, neigh: neighbours, handshake: handshake}, log)
}

// captiveDeps are what the captive-portal part works through: the check, the
// marks, the neighbour table and the device's latest handshake.
type captiveDeps struct {
	detect    func(context.Context) portal.Result
	nat       deviceNAT
	fwd       clientDNS
	neigh     func(lanIf string, mac net.HardwareAddr) ([]netip.Addr, error)
	handshake func() time.Time
}

func buildCaptive(cfg *config.Config, deps captiveDeps, log *slog.Logger) (*captive, error) {
	log = log.With("part", "portal")
	handshake := deps.handshake
	c := &captive{check: cfg.PortalCheck, lan: slices.Clone(cfg.LAN), handshake: handshake, log: log}
	hint := fmt.Sprintf("to log in from one device, open a window for it: fobgw portal open -config %s DEVICE", cfg.File)
	if cfg.StatusListen.IsValid() {
		hint += fmt.Sprintf(", or press the button on http://%v/ from that device", cfg.StatusListen)
	}
	c.watch = portal.NewWatcher(portal.WatcherConfig{
		Detect:   deps.detect,
		TunnelUp: c.tunnelUp,
		Hint:     hint,
		Logger:   log,
	})
	c.marker = &windowMarker{nat: deps.nat, fwd: deps.fwd, lan: c.lan, lanIf: cfg.LANInterface, neigh: deps.neigh, log: log}
	c.window = portal.NewWindow(c.marker, log)
	hosts := []string{}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h, h+".lan", h+".local")
	}
	var err error
	if c.guard, err = portal.NewGuard(portal.GuardConfig{LAN: c.lan, Hosts: hosts}); err != nil {
		return nil, err
	}
	return c, nil
}

// tunnelUp: a handshake succeeded within rejectAfter.
func (c *captive) tunnelUp() bool {
	hs := c.handshake()
	return !hs.IsZero() && time.Since(hs) < rejectAfter
}

// run checks for a portal and watches the window until ctx is done; then
// it closes an open window.
func (c *captive) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.watch.Run(ctx)
	}()
	t := time.NewTicker(observeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			if open, err := c.window.Close(time.Now()); open {
				c.log.Info("portal window closed as the gateway stops")
				if err != nil {
					c.log.Warn("portal window: "+err.Error(), "err", err)
				}
			}
			return
		case <-t.C:
			c.observe(time.Now())
		}
	}
}

// observe closes the window at the first handshake after it opened or at
// its end, and otherwise renews its marks (a repair of the table, a new
// address of a device by MAC).
func (c *captive) observe(now time.Time) {
	if !c.window.State().Open {
		return
	}
	why, err := c.window.Observe(now, c.handshake())
	if err != nil {
		c.log.Warn("portal window: "+err.Error(), "err", err)
	}
	if why == 0 {
		c.marker.renew(now)
	}
}

// open opens the window for d for length as asked by by.
func (c *captive) open(d portal.Device, length time.Duration, by string) (portal.WindowState, error) {
	if length == 0 {
		length = portal.DefaultWindow
	}
	return c.window.Open(time.Now(), d, length, by, c.handshake())
}

// detected reports whether a portal is seen now.
func (c *captive) detected() (portal.WatchStatus, bool) {
	ws := c.watch.Status()
	return ws, ws.State == portal.Portal
}

// PortalStatus is the captive-portal part of Status.
type PortalStatus struct {
	Check              string              `json:"check"` // PortalCheck's value
	portal.WatchStatus                     // the latest check: state (none, portal, unknown), url, since, checks, found
	Window             portal.WindowState  `json:"window"`  // open, or the last one closed
	Windows            portal.WindowCounts `json:"windows"` // windows opened and closed, by reason
}

// status is the captive-portal part of Status; nil when off.
func (c *captive) status() *PortalStatus {
	if c == nil {
		return nil
	}
	return &PortalStatus{Check: c.check.String(), WatchStatus: c.watch.Status(), Window: c.window.State(), Windows: c.window.Counts()}
}

// writePortal prints the captive-portal lines of the text status.
func (s *Status) writePortal(w io.Writer) error {
	p := s.Portal
	if p == nil {
		return nil
	}
	var b strings.Builder
	switch p.State {
	case portal.Portal:
		fmt.Fprintf(&b, "captive portal:   DETECTED: %s (HTTP %d, since %s); log in from one device: fobgw portal open\n", p.URL, p.Status, p.Since.Format(time.TimeOnly))
	case portal.None:
		fmt.Fprintf(&b, "captive portal:   none (%d checks, %d found)\n", p.Checks, p.Found)
	default:
		why := "not checked yet"
		if p.Error != "" {
			why = p.Error
		}
		fmt.Fprintf(&b, "captive portal:   unknown: %s (%d checks, %d found)\n", why, p.Checks, p.Found)
	}
	wnd := p.Window
	switch {
	case wnd.Open:
		fmt.Fprintf(&b, "portal window:    OPEN for %v until %s (by %s): it alone goes out directly, the rest of the LAN stays behind the kill switch\n",
			wnd.Device, wnd.Until.Format(time.TimeOnly), wnd.By)
	case !wnd.Closed.IsZero():
		fmt.Fprintf(&b, "portal window:    closed (the last, for %v, at %s by %s)\n", wnd.Device, wnd.Closed.Format(time.TimeOnly), wnd.Reason)
	default:
		b.WriteString("portal window:    closed\n")
	}
	n := p.Windows
	fmt.Fprintf(&b, "portal windows:   %d opened; closed %d by handshake, %d by timeout, %d by the owner\n",
		n.Opened, n.ClosedByHandshake, n.ClosedByTimeout, n.ClosedByOwner)
	_, err := io.WriteString(w, b.String())
	return err
}

// portalAway is the at-home verdict's reason while a portal is detected and
// the tunnel is down, "" otherwise.
func portalAway(s *Status) string {
	p := s.Portal
	if p == nil || p.State != portal.Portal || s.TunnelUp {
		return ""
	}
	why := "A captive portal wants a login before the tunnel can come up (" + p.URL + ")"
	if p.Window.Open {
		return why + "; a window is open for " + p.Window.Device.String() + " until " + p.Window.Until.Format(time.TimeOnly) + "."
	}
	return why + ": open a window for the device that logs in."
}

// portalMetrics are the captive-portal metrics (0 with PortalCheck = off).
var portalMetrics = []metricDef{
	{"fobgw_captive_portal", "1 while a captive portal is detected.", false, func(s *Status) float64 {
		return b2f(s.Portal != nil && s.Portal.State == portal.Portal)
	}},
	{"fobgw_portal_checks_total", "Captive portal checks made while no handshake succeeded.", true, portalField(func(p *PortalStatus) uint64 { return p.Checks })},
	{"fobgw_portal_found_total", "Captive portals that appeared.", true, portalField(func(p *PortalStatus) uint64 { return p.Found })},
	{"fobgw_portal_window_open", "1 while a device's window to log in is open.", false, func(s *Status) float64 {
		return b2f(s.Portal != nil && s.Portal.Window.Open)
	}},
	{"fobgw_portal_windows_opened_total", "Windows opened for a device to log in.", true, portalField(func(p *PortalStatus) uint64 { return p.Windows.Opened })},
	{"fobgw_portal_windows_closed_by_handshake_total", "Windows closed by the first handshake after they opened.", true, portalField(func(p *PortalStatus) uint64 { return p.Windows.ClosedByHandshake })},
	{"fobgw_portal_windows_closed_by_timeout_total", "Windows closed at the end of their time.", true, portalField(func(p *PortalStatus) uint64 { return p.Windows.ClosedByTimeout })},
	{"fobgw_portal_windows_closed_by_owner_total", "Windows closed by the owner (fobgw portal close) or at stop.", true, portalField(func(p *PortalStatus) uint64 { return p.Windows.ClosedByOwner })},
}

func portalField(f func(*PortalStatus) uint64) func(*Status) float64 {
	return func(s *Status) float64 {
		if s.Portal == nil {
			return 0
		}
		return float64(f(s.Portal))
	}
}

// PortalReply is the answer to OpPortalOpen and OpPortalClose.
type PortalReply struct {
	Error string `json:"error,omitempty"` // nothing was done, and why
	// Done: the window was opened (or moved), or closed; false for a close
	// with no window open.
	Done     bool               `json:"done"`
	Window   portal.WindowState `json:"window"`
	Detected bool               `json:"detected"`      // a portal is detected now
	URL      string             `json:"url,omitempty"` // its page
}

// portalRequest answers the control socket's portal requests; nil when off.
func (g *gateway) portalRequest() func(Request) *PortalReply {
	c := g.portal
	if c == nil {
		return nil
	}
	return c.request
}

func (c *captive) request(req Request) *PortalReply {
	ws, detected := c.detected()
	r := &PortalReply{Detected: detected}
	if detected {
		r.URL = ws.URL
	}
	switch req.Op {
	case OpPortalOpen:
		d, err := portal.ParseDevice(req.Device, c.lan)
		if err != nil {
			r.Error = err.Error()
			return r
		}
		st, err := c.open(d, req.For, "command")
		r.Window = st
		if err != nil {
			r.Error = err.Error()
			return r
		}
		r.Done = true
	case OpPortalClose:
		open, err := c.window.Close(time.Now())
		r.Done, r.Window = open, c.window.State()
		if err != nil {
			r.Error = err.Error()
		}
	}
	return r
}

// PortalOpen asks the gateway on the control socket at path to open the
// window for device (a LAN address or a MAC address) for length (0: the
// default). An error is the request's failure or the gateway's refusal.
func PortalOpen(ctx context.Context, path, device string, length time.Duration) (*PortalReply, error) {
	return portalAsk(ctx, path, Request{Op: OpPortalOpen, Device: device, For: length})
}

// PortalClose asks the gateway on the control socket at path to close the
// window; Done is false when none was open.
func PortalClose(ctx context.Context, path string) (*PortalReply, error) {
	return portalAsk(ctx, path, Request{Op: OpPortalClose})
}

func portalAsk(ctx context.Context, path string, req Request) (*PortalReply, error) {
	var r PortalReply
	if err := ask(ctx, path, req, &r); err != nil {
		return nil, err
	}
	if r.Error != "" {
		return &r, errors.New(r.Error)
	}
	return &r, nil
}

// pageLogin is the status page's button: the window for the device that
// presses it, while a portal is detected.
type pageLogin struct{ c *captive }

// Token is the form's token for r, "" while no portal is detected.
func (l pageLogin) Token(r *http.Request) string {
	if _, ok := l.c.detected(); !ok {
		return ""
	}
	return l.c.guard.Token(time.Now(), r)
}

// Open opens the window for r's sender, when the guard allows it.
func (l pageLogin) Open(r *http.Request) error {
	now := time.Now()
	d, err := l.c.guard.Allow(now, r)
	if err != nil {
		// Any LAN device can send these: one line per refusalLogGap at most.
		if last := l.c.refusalLogged.Load(); now.UnixNano()-last >= int64(refusalLogGap) && l.c.refusalLogged.CompareAndSwap(last, now.UnixNano()) {
			l.c.log.Warn("portal window: the page's button refused", "remote", r.RemoteAddr, "err", err)
		}
		return err
	}
	if _, ok := l.c.detected(); !ok {
		return errors.New("no captive portal is detected now")
	}
	_, err = l.c.open(d, portal.DefaultWindow, "page")
	return err
}

// deviceNAT is masq's device window (*masq.NAT).
type deviceNAT interface {
	AllowDevice(d masq.Device, dur time.Duration) error
	RevokeDevice(d masq.Device) error
}

// clientDNS is the forwarder's per-client upstream (*dnsfwd.Forwarder).
type clientDNS interface {
	AllowClient(client netip.Addr, d time.Duration) error
}

// windowMarker makes the window true on the system: the device marked to
// leave directly in masq's table, with a timeout at the window's end so
// that it ends even if fobgw dies, and its DNS questions sent to Resolver
// (a device by MAC: the addresses the neighbour table has for it, looked up
// again while the window is open).
type windowMarker struct {
	nat   deviceNAT
	fwd   clientDNS
	lan   []netip.Prefix
	lanIf string
	neigh func(lanIf string, mac net.HardwareAddr) ([]netip.Addr, error)
	log   *slog.Logger

	mu    sync.Mutex
	dev   portal.Device       // the marked device; zero: none. Protected by mu
	until time.Time           // its end; protected by mu
	dns   map[netip.Addr]bool // its addresses the forwarder sends to Resolver; protected by mu
}

func (m *windowMarker) Mark(d portal.Device, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.markLocked(d, until, time.Now()); err != nil {
		m.unmarkLocked(d)
		return err
	}
	m.dev, m.until = d, until
	return nil
}

func (m *windowMarker) markLocked(d portal.Device, until, now time.Time) error {
	left := until.Sub(now)
	if left <= 0 {
		return errors.New("the window's end has passed")
	}
	if err := m.nat.AllowDevice(masqDevice(d), left); err != nil {
		return err
	}
	addrs, err := m.addrs(d)
	if err != nil {
		return err
	}
	if m.fwd == nil {
		if m.dev.IsZero() {
			m.log.Warn("portal window: no local resolver (Resolver): the device's DNS questions still go home; set Resolver", "device", d)
		}
		return nil
	}
	if m.dns == nil {
		m.dns = map[netip.Addr]bool{}
	}
	for _, a := range addrs {
		if err := m.fwd.AllowClient(a, left); err != nil {
			return err
		}
		m.dns[a] = true
	}
	return nil
}

// renew marks the open window's device again for the time it has left.
func (m *windowMarker) renew(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dev.IsZero() || !now.Before(m.until) {
		return
	}
	if err := m.markLocked(m.dev, m.until, now); err != nil {
		m.log.Warn("portal window: renew the marks", "device", m.dev, "err", err)
	}
}

func (m *windowMarker) Unmark(d portal.Device) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.unmarkLocked(d)
}

func (m *windowMarker) unmarkLocked(d portal.Device) error {
	err := m.nat.RevokeDevice(masqDevice(d))
	for a := range m.dns { // none without m.fwd
		err = errors.Join(err, m.fwd.AllowClient(a, 0))
	}
	m.dns, m.dev, m.until = nil, portal.Device{}, time.Time{}
	return err
}

// addrs are d's addresses for the forwarder: its own, or a MAC's from the
// neighbour table.
func (m *windowMarker) addrs(d portal.Device) ([]netip.Addr, error) {
	if a, ok := d.Addr(); ok {
		return []netip.Addr{a}, nil
	}
	mac, _ := d.MAC()
	all, err := m.neigh(m.lanIf, mac)
	return slices.DeleteFunc(all, func(a netip.Addr) bool {
		return !slices.ContainsFunc(m.lan, func(p netip.Prefix) bool { return p.Contains(a) })
	}), err
}

// masqDevice is d as masq names it.
func masqDevice(d portal.Device) masq.Device {
	if a, ok := d.Addr(); ok {
		return masq.Device{Addr: a}
	}
	mac, _ := d.MAC()
	return masq.Device{MAC: mac}
}

// neighbours returns the addresses the neighbour table of the interface
// lanIf holds for mac (none is no error: the device has not spoken yet).
func neighbours(lanIf string, mac net.HardwareAddr) ([]netip.Addr, error) {
	l, err := netlink.LinkByName(lanIf)
	if err != nil {
		return nil, fmt.Errorf("LAN interface %s: %w", lanIf, err)
	}
	ns, err := netlink.NeighList(l.Attrs().Index, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("read the neighbours of %s: %w", lanIf, err)
	}
	var out []netip.Addr
	for _, n := range ns {
		if n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) != 0 || string(n.HardwareAddr) != string(mac) {
			continue
		}
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap().IsGlobalUnicast() {
			out = append(out, a.Unmap())
		}
	}
	return out, nil
}

// windowDNS is the forwarder as a window's DNS marker: nil when it has no
// Resolver (none configured and none in resolv.conf at start).
func (g *gateway) windowDNS() clientDNS {
	if g.brk == nil || !g.brk.resolver.IsValid() {
		return nil
	}
	return g.fwd
}

// lastHandshake is the device's latest handshake, zero when none or
// unreadable.
func (g *gateway) lastHandshake() time.Time {
	if g.tun == nil {
		return time.Time{}
	}
	hs, _ := g.tun.LastHandshake()
	return hs
}

// pageLogin returns the status page's button; nil with PortalCheck = off.
func (g *gateway) pageLogin() statuspage.Login {
	if g.portal == nil {
		return nil
	}
	return pageLogin{g.portal}
}

// pagePortal is the page's view of p; nil with PortalCheck = off.
func pagePortal(p *PortalStatus) *statuspage.Portal {
	if p == nil {
		return nil
	}
	out := &statuspage.Portal{Detected: p.State == portal.Portal, Window: p.Window.Open, Closed: p.Window.Closed}
	if out.Detected {
		out.URL, out.Since = p.URL, p.Since
	}
	if !p.Window.Device.IsZero() {
		out.Device = p.Window.Device.String()
	}
	if p.Window.Open {
		out.Until = p.Window.Until
	} else if p.Window.Reason != 0 {
		out.Reason = p.Window.Reason.String()
	}
	return out
}

// writePortalPlan writes the captive-portal part of `fobgw check`.
func writePortalPlan(b *strings.Builder, cfg *config.Config) {
	if !cfg.PortalCheck.On() {
		b.WriteString("# captive portal: PortalCheck = off, no detection, no window\n")
		return
	}
	fmt.Fprintf(b, "# captive portal\ncheck %s from the gateway's own WAN path every %v while no handshake succeeds\n", cfg.PortalCheck, portal.DefaultInterval)
	fmt.Fprintf(b, "a window (fobgw portal open) lets one device out directly through sets %s/%s/%s with a timeout at its end\n", masq.SetBypass4, masq.SetBypass6, masq.SetBypassMAC)
}
