// Package gateway is the FOB gateway's wiring: given a config.Config, it
// runs wireguard-go on a kernel TUN wrapped by mssclamp and pmtud, and wires
// in health (the endpoint healer and the LAN-path probe, which it gives their
// dependencies and subscribers when it builds them), policyroute (the LAN's
// routing table and kill switch), masq and dnsfwd (the LAN's DNS). It decides
// when the path MTU is measured again (remeasure.go), assembles the Status
// with the at-home verdict, serves the WireGuard UAPI socket (`wg show`), a
// control socket (`fobgw status`, `fobgw portal open|close`), Prometheus
// metrics and the status page, and talks to systemd (READY, WATCHDOG). With
// PortalCheck on it looks for a captive portal while no handshake succeeds
// and keeps one device's window to log in (portal.go).
//
// # Start and stop order
//
// [Run] checks everything it can without changing the system (the
// configuration, the key file's mode, that no other instance runs, that
// LANInterface exists and holds DNSListen's address: a *ConfigError, exit
// 2, otherwise, from `fobgw check` too), then: the kill switch and LAN rules
// (policyroute.ApplyKillSwitch), the TUN and the WireGuard device, its
// address and link up, the tunnel routes (policyroute.Apply), the
// masquerade table (masq, with the local breakout's sets and marks when
// Bypass or LocalDomains is set or PortalCheck is on; with none of them a
// leftover one is removed), the DNS forwarder (with the breakout, its
// second upstream, Resolver, and masq's local set; breakout.go), the
// endpoint healer (which also reads the clock) and the LAN-path probe, the
// captive-portal watcher, the control socket and the metrics listener; then
// READY=1. Every 10 s (RepairInterval) drift in the routing state and the
// masquerade table is repaired. On cancel it stops in reverse and removes
// fobgw's routes and rules except, with KillSwitch = on, the kill switch:
// the LAN stays cut off from the local ISP while fobgw is down. With the
// kill switch the local breakout's table and rule stay too, as after a
// crash: a bypassed device keeps the local ISP while fobgw is down, and
// nothing else gets it. A start that fails half
// way undoes what it did, except the kill switch. [Down] removes
// everything, the kill switch and the masquerade table too.
//
// Sysctls: with KillSwitch = on, forwarding stays on after a stop (as
// wg-quick leaves it): the unreachable routes keep the LAN off the local
// ISP. With KillSwitch = off nothing would, so Run reads the forwarding
// sysctls (net.ipv4.ip_forward, and net.ipv6.conf.all.forwarding with an
// IPv6 LAN) before changing them (policyroute's SaveSysctls) and writes the
// old values back whenever it stops: after a failed start and after a normal stop alike. (After a crash
// they stay; the next run then finds and later restores forwarding on.)
//
// # Where the rest is described
//
// The configuration file: README.md, the one reference (a test keeps it,
// dist/fobgw.conf.example and the key table of package config in step). The
// endpoint healing (package health), the packages and the files of this
// one, and the memory limit: docs/design.md.
package gateway
