package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/fobgw/fobgw/config"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// waitLAN waits up to wait (see Options.LANWait) for lanReady to pass,
// polling every 250 ms, and returns lanReady's last error when it does not:
// a LAN bridge that comes up a little after fobgw at boot is waited for, a
// typo in LANInterface still fails (exit 2) without changing anything.
func waitLAN(ctx context.Context, h *netlink.Handle, cfg *config.Config, wait time.Duration, log *slog.Logger) error {
	if wait == 0 {
		wait = DefaultLANWait
	}
	err := lanReady(h, cfg)
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
			if err = lanReady(h, cfg); err == nil {
				log.Info("LAN interface ready", "interface", cfg.LANInterface)
				return nil
			}
		}
	}
}

// lanReady fails with a *ConfigError unless LANInterface exists in h's
// network namespace and holds DNSListen's address: a typo there (br1 for
// br0) would otherwise install a rule that matches nothing and turn on
// forwarding before the DNS forwarder fails.
func lanReady(h *netlink.Handle, cfg *config.Config) error {
	a := cfg.DNSListen.Addr()
	link, err := h.LinkByName(cfg.LANInterface)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("look up LANInterface %s: %w", cfg.LANInterface, err)
		}
		return &config.ConfigError{File: cfg.File, Key: "LANInterface",
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
	return &config.ConfigError{File: cfg.File, Key: "LANInterface",
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

// lanReadyHere runs lanReady in the current network namespace.
func lanReadyHere(cfg *config.Config) error {
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("open netlink: %w", err)
	}
	defer h.Close()
	return lanReady(h, cfg)
}
