package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/fobgw/fobgw/clock"
	"github.com/fobgw/fobgw/config"
	"github.com/fobgw/fobgw/dnsfwd"
	"github.com/fobgw/fobgw/health"
	"github.com/fobgw/fobgw/internal/chachapoly"
	"github.com/fobgw/fobgw/masq"
	"github.com/fobgw/fobgw/policyroute"
	"github.com/vishvananda/netlink"
)

// Options are Run's environment; the zero value is the production one.
type Options struct {
	Logger *slog.Logger // nil: discard
	RunDir string       // control socket directory, default /run/fobgw
	// OnReady, if set, is called once everything is up (when systemd is
	// told READY=1).
	OnReady func()
	// LANWait is how long Run waits for LANInterface to exist and hold
	// DNSListen's address before it gives up with a *ConfigError: at boot
	// the bridge may come up after fobgw. 0 means DefaultLANWait; negative,
	// no wait.
	LANWait time.Duration
	// RepairInterval is how often drift in the routing state and the
	// masquerade table is repaired; 0 means RepairInterval.
	RepairInterval time.Duration
}

// DefaultLANWait is how long Run waits for the LAN interface by default.
const DefaultLANWait = 30 * time.Second

func (o *Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// routeConfig is the policyroute part of cfg.
func routeConfig(cfg *config.Config) policyroute.Config {
	return policyroute.Config{
		LAN:             slices.Clone(cfg.LAN),
		LANInterface:    cfg.LANInterface,
		Table:           cfg.Table,
		TunnelInterface: cfg.Name,
		HomeNetworks:    slices.Clone(cfg.HomeNetworks),
		KillSwitch:      cfg.KillSwitch,
		BypassMark:      bypassMark(cfg),
	}
}

// gateway is one running instance.
type gateway struct {
	cfg    *config.Config
	log    *slog.Logger
	router *policyroute.Router
	tun    *tunnel
	pmtu   *pathMTU // path MTU discovery; the tunnel's outermost wrapper
	fwd    *dnsfwd.Forwarder
	heal   *health.Healer
	nat    *masq.NAT       // Masquerade; Apply with it off removes a leftover table
	lan    *health.LANPath // the LAN-path probe; nil when it cannot be compared
	kick   *health.Kick    // starts a handshake when a probe finds the peer silent
	brk    *breakout       // local breakout; nil without it
	portal *captive        // captive portals (portal.go); nil with PortalCheck = off

	repairs    atomic.Uint64
	mu         sync.Mutex
	repairErr  string         // last routing repair error, protected by mu
	homeOnLink []netip.Prefix // home networks that are the local network too, protected by mu
}

// undoStack holds how to undo each change start made, in the order made.
type undoStack []func()

func (u *undoStack) push(f func()) { *u = append(*u, f) }

// unwind undoes every change, the last first.
func (u *undoStack) unwind() {
	for i := len(*u) - 1; i >= 0; i-- {
		(*u)[i]()
	}
	*u = nil
}

// Run runs the gateway until ctx is done, then stops it, leaving the kill
// switch in place when KillSwitch is on. It returns nil after a clean stop.
// Everything in cfg and the system it needs is checked before anything is
// changed; a start that fails half way undoes what it did, except the kill
// switch. Errors of the configuration are *ConfigError.
func Run(ctx context.Context, cfg *config.Config, opt Options) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("open netlink: %w", err)
	}
	defer h.Close()
	g := &gateway{cfg: cfg, log: opt.logger()}
	defer func() { g.brk.close() }()
	priv, err := g.prepare(ctx, h, opt)
	if err != nil {
		return err
	}
	var undo undoStack
	if err := g.start(h, priv, opt, &undo); err != nil {
		undo.unwind()
		return err
	}
	runErr := g.serve(ctx, opt)
	g.stop(&undo)
	return runErr
}

// prepare checks everything that can be checked without changing the
// system, and returns the private key (created when PrivateKeyFile is
// missing).
func (g *gateway) prepare(ctx context.Context, h *netlink.Handle, opt Options) (config.Key, error) {
	cfg, log := g.cfg, g.log
	var err error
	g.router, err = policyroute.New(h, routeConfig(cfg))
	if err != nil {
		return config.Key{}, routeErr(cfg, err)
	}
	if g.nat, err = newNAT(cfg); err != nil {
		return config.Key{}, err
	}
	if g.brk, err = newBreakout(cfg, g.nat, log); err != nil {
		return config.Key{}, err
	}
	dc := dnsfwd.Config{
		Listen:    cfg.DNSListen,
		LAN:       slices.Clone(cfg.LAN),
		Upstream:  cfg.DNSUpstream,
		Interface: cfg.Name,
		Logger:    log.With("part", "dns"),
	}
	g.brk.dnsConfig(&dc)
	g.fwd, err = dnsfwd.New(dc)
	if err != nil {
		return config.Key{}, fmt.Errorf("%s: %w", cfg.File, err)
	}
	if g.portal, err = newCaptive(cfg, resolvConfServers(cfg), g.nat, g.windowDNS(), g.lastHandshake, log); err != nil {
		return config.Key{}, err
	}
	ctlPath := ControlSocket(opt.RunDir, cfg.Name)
	if uapiAlive(cfg.Name) || socketAlive(ctlPath) {
		return config.Key{}, fmt.Errorf("a gateway named %s is already running (it answers on %s/%s.sock or %s): stop it first, or give this one another Name",
			cfg.Name, UAPIDir, cfg.Name, ctlPath)
	}
	if err := waitLAN(ctx, h, cfg, opt.LANWait, log); err != nil {
		return config.Key{}, err
	}
	priv, created, err := cfg.ReadPrivateKey(true)
	if err != nil {
		return config.Key{}, err
	}
	if created {
		log.Info("created a new private key; give the public key to the home router (see `fobgw home-config`)",
			"file", cfg.PrivateKeyFile, "public_key", priv.PublicKey().String())
	} else {
		log.Info("starting", "name", cfg.Name, "public_key", priv.PublicKey().String())
	}
	return priv, nil
}

// start makes the changes, in order, pushing how to undo each on undo:
// the routing and the tunnel, then the DNS forwarder, the healer and the
// listeners.
func (g *gateway) start(h *netlink.Handle, priv config.Key, opt Options, undo *undoStack) error {
	if err := g.startRouting(h, priv, undo); err != nil {
		return err
	}
	if err := g.fwd.Start(); err != nil {
		return fmt.Errorf("start the DNS forwarder on %v (DNSListen): %w", g.cfg.DNSListen, err)
	}
	undo.push(func() { g.fwd.Close() })
	g.startWatchers(undo)
	return g.startListeners(opt, undo)
}

// startRouting installs the kill switch and LAN rules, the tunnel, then
// the tunnel routes.
func (g *gateway) startRouting(h *netlink.Handle, priv config.Key, undo *undoStack) error {
	cfg, log := g.cfg, g.log
	if err := removeStaleLink(h, cfg.Name, log); err != nil {
		return err
	}
	if !cfg.KillSwitch {
		// Without the kill switch nothing but the tunnel routes keeps the
		// LAN from leaving through the local ISP once forwarding is on, so
		// the forwarding sysctls go back to what they were whenever fobgw
		// stops, after a failed start and a normal stop alike (unlike
		// wg-quick). Pushed first, so it runs last, after the routes are
		// gone, and also when ApplyKillSwitch fails half way.
		saved, err := g.router.SaveSysctls()
		if err != nil {
			return err
		}
		undo.push(func() { g.restoreSysctls(saved) })
	}
	if err := g.router.ApplyKillSwitch(); err != nil {
		return fmt.Errorf("install the kill switch and LAN rules: %w", err)
	}
	g.noteHomeOnLink()
	undo.push(func() {
		// The kill switch stays: the LAN must not leak while fobgw is down.
		if err := g.router.Remove(true); err != nil {
			log.Error("undo routes", "err", err)
		}
	})
	var err error
	g.pmtu = newPathMTU(cfg, log)
	g.tun, err = openTunnel(h, cfg, priv, g.pmtu, log)
	if err != nil {
		return err
	}
	undo.push(g.tun.close)
	if err := g.router.Apply(); err != nil {
		return fmt.Errorf("install the tunnel routes: %w", err)
	}
	// After the routes, as the LAN's packets start to flow; Masquerade off
	// removes a table a killed run left.
	undo.push(func() {
		if natStays(cfg) {
			log.Info("the local breakout's table stays with the kill switch: bypassed devices keep the local ISP", "table", "inet "+masq.TableName)
			return
		}
		if err := g.nat.Remove(); err != nil {
			log.Error("undo masquerade", "err", err)
		}
	})
	if err := g.nat.Apply(); err != nil {
		return fmt.Errorf("Masquerade = %s: %w", onOff(cfg.Masquerade), err)
	}
	return nil
}

// restoreSysctls writes back the forwarding sysctls saved before start.
func (g *gateway) restoreSysctls(saved policyroute.SavedSysctls) {
	restored, err := g.router.RestoreSysctls(saved)
	for _, s := range restored {
		g.log.Info("sysctl restored (KillSwitch is off)", "sysctl", s.Key, "value", s.Value)
	}
	if err != nil {
		g.log.Error("restoring a sysctl failed", "err", err)
	}
}

// startWatchers starts the check of the DNS upstream, path MTU discovery,
// the endpoint healer and the LAN-path probe in the background. The
// healer's news goes to the LAN-path probe and to remeasure, which decides
// when the path MTU is measured again.
func (g *gateway) startWatchers(undo *undoStack) {
	cfg := g.cfg
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	undo.push(func() { cancel(); wg.Wait() })
	remeasure := newRemeasure(g.pmtu)
	subs := []func(health.Event){remeasure.observe}
	g.lan = health.NewLANPath(health.LANPathConfig{Interface: cfg.Name, Probe: cfg.Probe, Source: cfg.DNSListen.Addr(),
		LAN: cfg.LAN, Masquerade: cfg.Masquerade, Log: g.log.With("part", "lan-path")})
	if g.lan != nil {
		subs = append(subs, g.lan.Observe)
	}
	// The kick starts a handshake at once when a probe finds the peer
	// silent (a home router that restarted); closed before the watchers
	// stop, so that nothing starts a handshake once stopping.
	g.kick = health.NewKick(health.NewDNSProber(cfg.Name, cfg.Probe, netip.Addr{}), g.tun, g.log.With("part", "handshake"))
	undo.push(g.kick.Close)
	g.heal = health.New(health.Config{
		Endpoints:   cfg.EndpointList(),
		Resolver:    health.NewDNSResolver(cfg.Resolver, resolvConfServers(cfg), health.ProbeTimeout),
		Prober:      g.kick,
		Peer:        g.tun,
		Clock:       clock.System(),
		BuildTime:   clock.BuildTime(),
		Log:         g.log.With("part", "endpoint"),
		Subscribers: subs,
	})
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx)
		}()
	}
	run(g.checkUpstream)
	run(func(ctx context.Context) {
		g.pmtu.run(ctx, func(ctx context.Context) {
			watchUnderlay(ctx, cfg.Name, remeasure.underlayChanged, g.log.With("part", "mtu"))
		})
	})
	if g.lan != nil {
		run(g.lan.Run)
	}
	run(g.brk.run)
	run(g.heal.Run)
	if g.portal != nil {
		run(g.portal.run)
	}
}

// checkUpstream waits up to 30 s for the first handshake, then asks the
// DNS upstream once through the tunnel and warns when it does not answer
// (a Pi-hole that ignores the tunnel's addresses, say).
func (g *gateway) checkUpstream(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Wait for the tunnel before asking, so the answer means something.
	for pctx.Err() == nil {
		if hs, _ := g.tun.LastHandshake(); !hs.IsZero() {
			break
		}
		sleepCtx(pctx, 500*time.Millisecond)
	}
	qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
	defer qcancel()
	if err := g.fwd.Probe(qctx); err != nil && ctx.Err() == nil {
		g.log.Warn("the DNS upstream does not answer through the tunnel yet", "upstream", g.cfg.DNSUpstream, "err", err)
	}
}

// serve tells systemd the gateway is ready, then repairs the routing every
// RepairInterval and feeds the watchdog until ctx is done or the device
// stops; it returns why it stopped unless ctx is done.
func (g *gateway) serve(ctx context.Context, opt Options) error {
	cfg := g.cfg
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		g.log.Warn("sd_notify READY failed", "err", err)
	}
	g.log.Info("gateway up", "name", cfg.Name, "lan", cfg.LAN, "endpoint", join(cfg.EndpointList(), ", "), "masquerade", cfg.Masquerade, "dns", cfg.DNSListen,
		"cipher", chachapoly.Implementation())
	if opt.OnReady != nil {
		opt.OnReady()
	}
	var wdC <-chan time.Time
	if wd, err := daemon.SdWatchdogEnabled(false); err == nil && wd > 0 {
		t := time.NewTicker(wd / 2)
		defer t.Stop()
		wdC = t.C
	}
	every := opt.RepairInterval
	if every <= 0 {
		every = RepairInterval
	}
	repair := time.NewTicker(every)
	defer repair.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wdC:
			daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		case <-repair.C:
			g.repairRoutes()
		case <-g.tun.dev.Wait():
			return errors.New("the WireGuard device stopped unexpectedly")
		case uerr := <-g.tun.uerr:
			return fmt.Errorf("the UAPI socket %s/%s.sock stopped (deleted?): %w", UAPIDir, cfg.Name, uerr)
		}
	}
}

// stop undoes start in reverse. undo's first entry is Remove(true): with
// KillSwitch on, the kill switch stays.
func (g *gateway) stop(undo *undoStack) {
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	g.log.Info("stopping", "name", g.cfg.Name, "kill_switch_stays", g.cfg.KillSwitch)
	undo.unwind()
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// routeErr makes policyroute's configuration errors *ConfigError (exit 2).
func routeErr(cfg *config.Config, err error) error {
	if errors.Is(err, policyroute.ErrConfig) || errors.Is(err, policyroute.ErrUnknownTable) {
		return &config.ConfigError{File: cfg.File, Problem: err.Error(), Expected: "fix the [Gateway] section"}
	}
	return fmt.Errorf("%s: %w", cfg.File, err)
}
