package gateway

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/fobgw/fobgw/config"
	"github.com/fobgw/fobgw/health"
	"github.com/fobgw/fobgw/policyroute"
)

// Check writes what Run would set up for cfg (the tunnel, the routes, rules
// and sysctls as ip(8)/sysctl(8) commands, and the listeners) to w. It
// changes nothing: a missing private key file is reported, not created.
// Like Run, it requires LANInterface to exist and hold DNSListen's address;
// when it does not, the plan is still written and a *ConfigError returned.
func Check(cfg *config.Config, opt Options, w io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	keyNote := ""
	if k, _, err := cfg.ReadPrivateKey(false); err == nil {
		keyNote = "public key " + k.PublicKey().String()
	} else if cfg.PrivateKeyFile != "" {
		if _, serr := os.Stat(cfg.PrivateKeyFile); errors.Is(serr, fs.ErrNotExist) {
			keyNote = cfg.PrivateKeyFile + " does not exist yet: `fobgw run` creates it (0600)"
		} else {
			return err
		}
	} else {
		return err
	}
	st, err := policyroute.Desired(routeConfig(cfg))
	if err != nil {
		return routeErr(cfg, err)
	}
	lanErr := lanReadyHere(cfg)
	var b strings.Builder
	if lanErr == nil {
		fmt.Fprintf(&b, "# %s is valid.\n", cfg.File)
	} else {
		fmt.Fprintf(&b, "# %s is valid, but this system is not ready for it: %v\n", cfg.File, lanErr)
	}
	fmt.Fprintf(&b, "# tunnel\n")
	fmt.Fprintf(&b, "tun %s mtu %s address %s (%s)\n", cfg.Name, cfg.MTUText(), join(cfg.Address, ","), keyNote)
	switch cfg.ClampMode {
	case config.ClampAuto:
		fmt.Fprintf(&b, "mss clamp to %d (IPv4) / %d (IPv6), both directions, following the tunnel MTU\n", cfg.MTUCeiling()-40, cfg.MTUCeiling()-60)
	case config.ClampFixed:
		fmt.Fprintf(&b, "mss clamp to %d (IPv4) / %d (IPv6), both directions\n", cfg.ClampMSS, cfg.ClampMSS-20)
	case config.ClampOff:
		fmt.Fprintf(&b, "mss clamp off\n")
	}
	eps := cfg.EndpointList()
	ep := join(eps, ", ")
	if len(eps) > 1 {
		ep = "list " + ep + fmt.Sprintf(" (tried in order; the first again every %v)", health.FailbackInterval)
	}
	if slices.ContainsFunc(eps, func(e config.Endpoint) bool { return !e.IsLiteral() }) {
		if len(cfg.Resolver) > 0 {
			ep += " (resolved through " + join(cfg.Resolver, ", ") + " only)"
		} else {
			ep += " (resolved through the Resolver below only)"
		}
	}
	fmt.Fprintf(&b, "peer %s endpoint %s allowed-ips %s keepalive %d\n", cfg.PublicKey, ep, join(cfg.AllowedIPs, ","), cfg.PersistentKeepalive)
	if slices.ContainsFunc(eps, func(e config.Endpoint) bool { return !e.IsLiteral() }) && len(cfg.Resolver) == 0 {
		// Read now for information only: run reads it at each resolution
		// and waits (with back-off) while it lists no nameserver.
		now := "none usable yet; run retries with back-off"
		if rs, err := resolvConfServers(cfg)(); err == nil {
			now = join(rs, ", ")
		} else {
			now += ": " + err.Error()
		}
		fmt.Fprintf(&b, "Resolver: nameservers of %s (now: %s)\n", cfg.ResolvConfPath(), now)
	}
	fmt.Fprintf(&b, "health probe %v through %s every %v\n", cfg.Probe, cfg.Name, health.ProbeInterval)
	if cfg.DNSListen.Addr().Is4() == cfg.Probe.Addr().Is4() {
		fmt.Fprintf(&b, "lan path probe %v from %v through %s every %v\n", cfg.Probe, cfg.DNSListen.Addr(), cfg.Name, health.ProbeInterval)
	}
	fmt.Fprintf(&b, "# routes, rules and sysctls\n")
	b.WriteString(st.String())
	for _, h := range cfg.HomeNetworks {
		if onLinkNotTunnel(h.Addr(), cfg.Name) {
			fmt.Fprintf(&b, "# HomeNetworks %v is the local network now (a link of this system): run leaves out its routes above that would win over the local one, and the gateway reaches these addresses here\n", h)
		}
	}
	fmt.Fprintf(&b, "# masquerade (nftables)\n")
	nat, err := newNAT(cfg)
	if err != nil {
		return err
	}
	b.WriteString(nat.String())
	writeBreakoutPlan(&b, cfg)
	writePortalPlan(&b, cfg)
	fmt.Fprintf(&b, "# listeners\n")
	if cfg.ListenPort != 0 {
		fmt.Fprintf(&b, "udp *:%d WireGuard (all addresses)\n", cfg.ListenPort)
	} else {
		fmt.Fprintf(&b, "udp *:<random> WireGuard (all addresses; set ListenPort for a fixed port)\n")
	}
	fmt.Fprintf(&b, "udp,tcp %v DNS for %s, forwarded to %v through %s\n", cfg.DNSListen, join(cfg.LAN, ","), cfg.DNSUpstream, cfg.Name)
	if cfg.MetricsListen != "" {
		fmt.Fprintf(&b, "tcp %s Prometheus metrics at /metrics\n", cfg.MetricsListen)
	} else {
		fmt.Fprintf(&b, "metrics off\n")
	}
	if cfg.StatusListen.IsValid() {
		fmt.Fprintf(&b, "tcp %v status page (read-only, LAN only)\n", cfg.StatusListen)
	}
	fmt.Fprintf(&b, "unix %s/%s.sock WireGuard UAPI (wg show %s)\n", UAPIDir, cfg.Name, cfg.Name)
	fmt.Fprintf(&b, "unix %s status (fobgw status)\n", ControlSocket(opt.RunDir, cfg.Name))
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	return lanErr
}
