package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/fobgw/fobgw/dnsfwd"
	"github.com/fobgw/fobgw/policyroute"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// CheckInterval is how often Run compares the routing state with the
// desired one and repairs drift.
const CheckInterval = 10 * time.Second

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
func routeConfig(cfg *Config) policyroute.Config {
	return policyroute.Config{
		LAN:             slices.Clone(cfg.LAN),
		LANInterface:    cfg.LANInterface,
		Table:           cfg.Table,
		TunnelInterface: cfg.Name,
		HomeNetworks:    slices.Clone(cfg.HomeNetworks),
		KillSwitch:      cfg.KillSwitch,
	}
}

// gateway is one running instance.
type gateway struct {
	cfg    *Config
	log    *slog.Logger
	router *policyroute.Router
	tun    *tunnel
	fwd    *dnsfwd.Forwarder
	heal   *healer

	repairs atomic.Uint64
	mu      sync.Mutex
	chkErr  string // last route check error, protected by mu
}

// Run runs the gateway until ctx is done, then stops it, leaving the kill
// switch in place when KillSwitch is on. It returns nil after a clean stop.
// Everything in cfg and the system it needs is checked before anything is
// changed; a start that fails half way undoes what it did, except the kill
// switch. Errors of the configuration are *ConfigError.
func Run(ctx context.Context, cfg *Config, opt Options) (err error) {
	log := opt.logger()
	if err := cfg.Validate(); err != nil {
		return err
	}
	g := &gateway{cfg: cfg, log: log}

	// 1. Everything that can be checked without changing the system.
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("open netlink: %w", err)
	}
	defer h.Close()
	g.router, err = policyroute.New(h, routeConfig(cfg))
	if err != nil {
		return routeErr(cfg, err)
	}
	g.fwd, err = dnsfwd.New(dnsfwd.Config{
		Listen:    cfg.DNSListen,
		LAN:       slices.Clone(cfg.LAN),
		Upstream:  cfg.DNSUpstream,
		Interface: cfg.Name,
		Logger:    log.With("part", "dns"),
	})
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.File, err)
	}
	ctlPath := ControlSocket(opt.RunDir, cfg.Name)
	if uapiAlive(cfg.Name) || socketAlive(ctlPath) {
		return fmt.Errorf("a gateway named %s is already running (it answers on %s/%s.sock or %s): stop it first, or give this one another Name",
			cfg.Name, UAPIDir, cfg.Name, ctlPath)
	}
	if err := waitLAN(ctx, h, cfg, opt.LANWait, log); err != nil {
		return err
	}
	priv, created, err := cfg.privateKey(true)
	if err != nil {
		return err
	}
	if created {
		log.Info("created a new private key; give the public key to the home router (see `fobgw home-config`)",
			"file", cfg.PrivateKeyFile, "public_key", priv.PublicKey().String())
	} else {
		log.Info("starting", "name", cfg.Name, "public_key", priv.PublicKey().String())
	}

	// 2. Changes, each undone in reverse when a later one fails.
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if err := removeStaleLink(h, cfg.Name, log); err != nil {
		return err
	}
	if !cfg.KillSwitch {
		// Without the kill switch nothing but the tunnel routes keeps the
		// LAN from leaving through the local ISP once forwarding is on, so
		// the forwarding sysctls go back to what they were whenever fobgw
		// stops, after a failed start and a normal stop alike (unlike
		// wg-quick). Registered first, so it runs last, after the routes
		// are gone, and also when ApplyKillSwitch fails half way.
		saved, err := readSysctls(g.router.State())
		if err != nil {
			return err
		}
		undo = append(undo, func() { restoreSysctls(saved, log) })
	}
	if err := g.router.ApplyKillSwitch(); err != nil {
		return fmt.Errorf("install the kill switch and LAN rules: %w", err)
	}
	undo = append(undo, func() {
		// The kill switch stays: the LAN must not leak while fobgw is down.
		if err := g.router.Remove(true); err != nil {
			log.Error("undo routes", "err", err)
		}
	})
	g.tun, err = openTunnel(h, cfg, priv, log)
	if err != nil {
		return err
	}
	undo = append(undo, g.tun.close)
	if err := g.router.Apply(); err != nil {
		return fmt.Errorf("install the tunnel routes: %w", err)
	}
	if err := g.fwd.Start(); err != nil {
		return fmt.Errorf("start the DNS forwarder on %v (DNSListen): %w", cfg.DNSListen, err)
	}
	undo = append(undo, func() { g.fwd.Close() })

	hctx, hcancel := context.WithCancel(context.Background())
	var hwg sync.WaitGroup
	undo = append(undo, func() { hcancel(); hwg.Wait() })
	hwg.Add(2)
	go func() {
		defer hwg.Done()
		pctx, cancel := context.WithTimeout(hctx, 30*time.Second)
		defer cancel()
		// Wait for the tunnel before asking, so the answer means something.
		for pctx.Err() == nil {
			if hs, _ := g.tun.LastHandshake(); !hs.IsZero() {
				break
			}
			sleepCtx(pctx, 500*time.Millisecond)
		}
		qctx, qcancel := context.WithTimeout(hctx, 5*time.Second)
		defer qcancel()
		if err := g.fwd.Probe(qctx); err != nil && hctx.Err() == nil {
			log.Warn("the DNS upstream does not answer through the tunnel yet", "upstream", cfg.DNSUpstream, "err", err)
		}
	}()
	g.heal = newHealer(defaultHealerConfig(cfg.Endpoint),
		&dnsResolver{servers: cfg.Resolver, lookup: cfg.resolvConfServers, timeout: ProbeTimeout},
		&dnsProber{iface: cfg.Name, addr: cfg.Probe}, g.tun, log.With("part", "endpoint"))
	go func() {
		defer hwg.Done()
		g.heal.run(hctx, time.Now, time.After)
	}()

	ctl, err := listenControl(ctlPath, g.status, log)
	if err != nil {
		return err
	}
	undo = append(undo, ctl.close)
	if cfg.MetricsListen != "" {
		reg, err := newRegistry(g.status, g.fwd.Collector(), newRoomDropsCollector())
		if err != nil {
			return err
		}
		ms, err := listenMetrics(cfg.MetricsListen, reg, log)
		if err != nil {
			return err
		}
		undo = append(undo, ms.close)
	}

	// 3. Running.
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("sd_notify READY failed", "err", err)
	}
	log.Info("gateway up", "name", cfg.Name, "lan", cfg.LAN, "endpoint", cfg.Endpoint.String(), "dns", cfg.DNSListen)
	if opt.OnReady != nil {
		opt.OnReady()
	}
	var wdC <-chan time.Time
	if wd, err := daemon.SdWatchdogEnabled(false); err == nil && wd > 0 {
		t := time.NewTicker(wd / 2)
		defer t.Stop()
		wdC = t.C
	}
	check := time.NewTicker(CheckInterval)
	defer check.Stop()
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-wdC:
			daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		case <-check.C:
			g.checkRoutes()
		case <-g.tun.dev.Wait():
			runErr = errors.New("the WireGuard device stopped unexpectedly")
			break loop
		case uerr := <-g.tun.uerr:
			runErr = fmt.Errorf("the UAPI socket %s/%s.sock stopped (deleted?): %w", UAPIDir, cfg.Name, uerr)
			break loop
		}
	}

	// 4. Stop, in reverse.
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	log.Info("stopping", "name", cfg.Name, "kill_switch_stays", cfg.KillSwitch)
	// undo[0] is Remove(true): with KillSwitch on the kill switch stays.
	for i := len(undo) - 1; i >= 0; i-- {
		undo[i]()
	}
	undo = nil
	return runErr
}

func (g *gateway) checkRoutes() {
	n, err := g.router.Check()
	if n > 0 {
		g.repairs.Add(uint64(n))
		g.log.Warn("routing drift repaired", "items", n)
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	g.mu.Lock()
	changed := msg != g.chkErr
	g.chkErr = msg
	g.mu.Unlock()
	if changed && err != nil {
		g.log.Error("routing check failed", "err", err)
	}
}

// status assembles the Status document.
func (g *gateway) status() *Status {
	now := time.Now()
	s := &Status{Name: g.cfg.Name, Time: now, HandshakeAgeSeconds: -1}
	if g.tun != nil {
		ps, err := g.tun.peerStats()
		if err != nil {
			s.LastError = err.Error()
		}
		s.ListenPort = ps.ListenPort
		s.LastHandshake = ps.LastHandshake
		if !ps.LastHandshake.IsZero() {
			age := now.Sub(ps.LastHandshake)
			s.HandshakeAgeSeconds = age.Seconds()
			s.TunnelUp = age < 180*time.Second
		}
		s.Endpoint = ps.Endpoint
		s.RxBytes, s.TxBytes = ps.RxBytes, ps.TxBytes
		if g.tun.clamp != nil {
			cs := g.tun.clamp.Stats()
			s.Clamp = ClampStatus{Enabled: true, ClampedOut: cs.ClampedOut, ClampedIn: cs.ClampedIn, Malformed: cs.Malformed}
		}
	}
	if g.fwd != nil {
		d := g.fwd.Stats()
		s.DNS = DNSStatus{Queries: d.Queries, OK: d.OK, NXDomain: d.NXDomain, ServFail: d.ServFail, Dropped: d.Dropped,
			CacheHits: d.CacheHits, CacheMisses: d.CacheMisses, UpstreamTimeouts: d.UpstreamTimeouts,
			UpstreamErrors: d.UpstreamErrors, InFlight: d.InFlight}
	}
	if g.heal != nil {
		h := g.heal.state()
		s.EndpointName = h.EndpointName
		for _, a := range h.Records {
			s.EndpointRecords = append(s.EndpointRecords, a.String())
		}
		s.ProbeMisses, s.ProbeMissesTotal, s.Probes, s.ProbesSilent = h.Misses, h.TotalMisses, h.Probes, h.SilentProbes
		s.LastProbeOK = h.LastProbeOK
		s.EndpointChanges, s.Reresolutions, s.ResolveFailures = h.EndpointChanges, h.Reresolutions, h.ResolveFailures
		if s.LastError == "" {
			s.LastError = h.LastError
		}
	}
	s.RouteRepairs = g.repairs.Load()
	g.mu.Lock()
	s.RouteCheckError = g.chkErr
	g.mu.Unlock()
	return s
}

// Down removes every route and rule fobgw installed for cfg, the kill
// switch too, and a leftover TUN of that name. It refuses while the gateway
// runs.
func Down(cfg *Config, opt Options) error {
	log := opt.logger()
	ctlPath := ControlSocket(opt.RunDir, cfg.Name)
	if uapiAlive(cfg.Name) || socketAlive(ctlPath) {
		return fmt.Errorf("the gateway %s is running: stop it first (systemctl stop fobgw, or Ctrl-C), then run `fobgw down` again", cfg.Name)
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("open netlink: %w", err)
	}
	defer h.Close()
	r, err := policyroute.New(h, routeConfig(cfg))
	if err != nil {
		return routeErr(cfg, err)
	}
	var errs []error
	if err := r.Remove(false); err != nil {
		errs = append(errs, fmt.Errorf("remove routes and rules: %w", err))
	}
	if err := removeStaleLink(h, cfg.Name, log); err != nil {
		errs = append(errs, err)
	}
	for _, p := range []string{ctlPath, UAPIDir + "/" + cfg.Name + ".sock"} {
		if err := os.Remove(p); err == nil {
			log.Info("removed a stale socket", "path", p)
		}
	}
	return errors.Join(errs...)
}

// sysctlSetting is a sysctl's value as it was before fobgw wrote it.
type sysctlSetting struct {
	key, path, value string
}

// readSysctls reads the current values of the sysctls of st that outlive the
// tunnel (forwarding; the tunnel's rp_filter goes with its interface).
func readSysctls(st policyroute.State) ([]sysctlSetting, error) {
	var out []sysctlSetting
	for _, s := range st.Sysctls {
		if s.NeedsTunnel() {
			continue
		}
		p := s.Key // sysctl(8) form: dotted, or slashed when a part has dots
		if !strings.Contains(p, "/") {
			p = strings.ReplaceAll(p, ".", "/")
		}
		p = "/proc/sys/" + p
		v, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read %s before changing it: %w", s.Key, err)
		}
		out = append(out, sysctlSetting{key: s.Key, path: p, value: strings.TrimSpace(string(v))})
	}
	return out, nil
}

// restoreSysctls writes the saved values back, where they differ.
func restoreSysctls(saved []sysctlSetting, log *slog.Logger) {
	for _, s := range saved {
		cur, err := os.ReadFile(s.path)
		if err == nil && strings.TrimSpace(string(cur)) == s.value {
			continue
		}
		if err := os.WriteFile(s.path, []byte(s.value+"\n"), 0o644); err != nil {
			log.Error("restoring a sysctl failed", "sysctl", s.key, "value", s.value, "err", err)
			continue
		}
		log.Info("sysctl restored (KillSwitch is off)", "sysctl", s.key, "value", s.value)
	}
}

// waitLAN waits up to wait (see Options.LANWait) for checkLAN to pass,
// polling every 250 ms, and returns checkLAN's last error when it does not:
// a LAN bridge that comes up a little after fobgw at boot is waited for, a
// typo in LANInterface still fails (exit 2) without changing anything.
func waitLAN(ctx context.Context, h *netlink.Handle, cfg *Config, wait time.Duration, log *slog.Logger) error {
	if wait == 0 {
		wait = DefaultLANWait
	}
	err := checkLAN(h, cfg)
	if err == nil || wait < 0 {
		return err
	}
	log.Warn("waiting for the LAN interface", "interface", cfg.LANInterface, "address", cfg.DNSListen.Addr(), "for", wait, "reason", err)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return err
		case <-deadline.C:
			return err
		case <-tick.C:
			if err = checkLAN(h, cfg); err == nil {
				log.Info("LAN interface ready", "interface", cfg.LANInterface)
				return nil
			}
		}
	}
}

// checkLAN fails with a *ConfigError unless LANInterface exists in h's
// network namespace and holds DNSListen's address: a typo there (br1 for
// br0) would otherwise install a rule that matches nothing and turn on
// forwarding before the DNS forwarder fails.
func checkLAN(h *netlink.Handle, cfg *Config) error {
	a := cfg.DNSListen.Addr()
	link, err := h.LinkByName(cfg.LANInterface)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("look up LANInterface %s: %w", cfg.LANInterface, err)
		}
		return &ConfigError{File: cfg.File, Key: "LANInterface",
			Problem:  fmt.Sprintf("interface %q does not exist%s", cfg.LANInterface, holderOf(h, a)),
			Expected: fmt.Sprintf("the LAN bridge or interface that holds DNSListen's address %v; create it first (e.g. ip link add br0 type bridge; ip addr add %v/24 dev br0) or fix the name", a, a)}
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list the addresses of %s: %w", cfg.LANInterface, err)
	}
	for _, x := range addrs {
		if b, ok := netip.AddrFromSlice(x.IP); ok && b.Unmap() == a {
			return nil
		}
	}
	return &ConfigError{File: cfg.File, Key: "LANInterface",
		Problem:  fmt.Sprintf("interface %q does not hold DNSListen's address %v%s", cfg.LANInterface, a, holderOf(h, a)),
		Expected: fmt.Sprintf("give it the address first (e.g. ip addr add %v/24 dev %s), or set LANInterface and DNSListen to the LAN interface and its address", a, cfg.LANInterface)}
}

// holderOf names the interface holding a, for messages: " (it is on eth1)".
func holderOf(h *netlink.Handle, a netip.Addr) string {
	addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return ""
	}
	for _, x := range addrs {
		if b, ok := netip.AddrFromSlice(x.IP); ok && b.Unmap() == a {
			if l, err := h.LinkByIndex(x.LinkIndex); err == nil {
				return fmt.Sprintf(" (%v is on %s)", a, l.Attrs().Name)
			}
		}
	}
	return fmt.Sprintf(" (no interface holds %v)", a)
}

func socketAlive(path string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := ReadStatus(ctx, path)
	return err == nil
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
func routeErr(cfg *Config, err error) error {
	if errors.Is(err, policyroute.ErrConfig) || errors.Is(err, policyroute.ErrUnknownTable) {
		return &ConfigError{File: cfg.File, Problem: err.Error(), Expected: "fix the [Gateway] section"}
	}
	return fmt.Errorf("%s: %w", cfg.File, err)
}
