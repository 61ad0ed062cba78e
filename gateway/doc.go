// Package gateway is the FOB gateway: it reads the configuration file and
// the private key, runs wireguard-go on a kernel TUN wrapped by mssclamp,
// keeps the peer's endpoint reachable, and wires in policyroute (the LAN's
// routing table and kill switch) and dnsfwd (the LAN's DNS). It serves the
// WireGuard UAPI socket (`wg show`), a status socket (`fobgw status`) and
// Prometheus metrics, and talks to systemd (READY, WATCHDOG).
//
// # Start and stop order
//
// [Run] checks everything it can without changing the system (the
// configuration, the key file's mode, that no other instance runs, that
// LANInterface exists and holds DNSListen's address: a *ConfigError, exit
// 2, otherwise, from `fobgw check` too), then: the kill switch and LAN rules
// (policyroute.ApplyKillSwitch), the TUN and the WireGuard device, its
// address and link up, the tunnel routes (policyroute.Apply), the DNS
// forwarder, the endpoint healer, the status socket and the metrics
// listener; then READY=1. Every 10 s the routing state is checked and
// drift repaired. On cancel it stops in reverse and removes fobgw's routes
// and rules except, with KillSwitch = on, the kill switch: the LAN stays
// cut off from the local ISP while fobgw is down. A start that fails half
// way undoes what it did, except the kill switch. [Down] removes
// everything, the kill switch too.
//
// Sysctls: with KillSwitch = on, forwarding stays on after a stop (as
// wg-quick leaves it): the unreachable routes keep the LAN off the local
// ISP. With KillSwitch = off nothing would, so Run reads the forwarding
// sysctls (net.ipv4.ip_forward, and net.ipv6.conf.all.forwarding with an
// IPv6 LAN) before changing them and writes the old values back whenever it
// stops: after a failed start and after a normal stop alike. (After a crash
// they stay; the next run then finds and later restores forwarding on.)
//
// # Endpoint healing
//
// The Endpoint's name is resolved only through Resolver (A, then AAAA),
// from plain UDP sockets that follow the main table, never through the
// tunnel or the system resolver. At boot an unresolvable name is retried
// after 1, 2, 4 ... 30 s; the device is up without an endpoint meanwhile
// and the LAN stays behind the kill switch. Every 3 s a probe goes through
// the tunnel: a DNS query ("." NS) to Probe from a UDP socket bound to the
// tunnel (SO_BINDTODEVICE); an answer or an ICMP port unreachable counts
// as alive, 2 s of silence as a miss (no raw socket, so no CAP_NET_RAW).
// A probe that goes unanswered while bytes from the peer arrived since the
// previous probe is no miss. Once the target has not answered for 13 s,
// bytes within the last 13 s are enough (wireguard-go's 10 s passive
// keepalive, which answers our probes' data, plus one interval): the
// tunnel works and only the probe target is silent (a Pi-hole dropping
// queries, say). A target that answered within 13 s is not taken for a
// silent one, so that its sudden silence (home moved) counts at once; when a
// target that answered starts dropping queries, the name may be re-resolved
// once before the 13 s rule takes over.
// After 3 consecutive misses, or a handshake older than 135 s, the name is
// re-resolved and the endpoint set to an address the previous resolution
// did not have, else to the next record (rotating through all of them).
// While the record has not changed yet, each of the next 5 misses asks
// again (so a record that follows within about 20 s of the first miss is
// taken up at the next probe); then the questions back off to every 6, 12,
// 24, at most 30 s, until the record changes or the tunnel answers. In the
// worst case the new endpoint is set about 12 s after the home address
// changes (with a silent probe target, about 22 s: 13 s without bytes from
// the peer, then 3 misses), and the handshake follows within REKEY_TIMEOUT
// (5 s).
//
// Without Resolver, the nameservers of /etc/resolv.conf are read at each
// resolution, not at start: while it lists none (the WAN's DHCP is not done
// yet at boot) the resolution fails and is retried with the back-off above,
// it is no configuration error. Nameservers that Resolver would refuse
// (see below) are skipped.
//
// # Configuration reference
//
// The file uses wg-quick's syntax: sections in brackets, "Key = Value"
// lines, '#' starts a comment, keys are case-insensitive. Each key may
// appear once (lists are comma-separated on one line); unknown keys,
// repeated keys, missing required keys and bad values are errors of the
// form "FILE:LINE: key "X": what is wrong; what is expected", all reported
// at once. A file holding PrivateKey or PresharedKey must not be readable
// by group or others.
//
// [Interface]
//
//	Name            TUN name, 1-15 characters; default fobgw0. The UAPI socket
//	                is /var/run/wireguard/<Name>.sock, the status socket
//	                /run/fobgw/<Name>.sock.
//	PrivateKeyFile  absolute path of the private key (base64, as wg genkey).
//	                Created with mode 0600 (directory 0700) by `fobgw run` when
//	                missing, and its public key logged; refused when readable
//	                by group or others. Either this or PrivateKey is required.
//	PrivateKey      the private key inline (base64).
//	ListenPort      UDP port of WireGuard on all addresses, 1-65535; default:
//	                a random port.
//	Address         required; the tunnel address(es) with prefix length,
//	                comma-separated, e.g. 10.1.200.2/24.
//	MTU             576-65535; default 1420.
//
// [Peer] (exactly one: the home router)
//
//	PublicKey            required; the home router's public key.
//	PresharedKey         optional preshared key (base64).
//	Endpoint             required; host:port. A DNS name (resolved through
//	                     Resolver only, and re-resolved when the tunnel fails),
//	                     an IPv4 address, or [IPv6]:port.
//	AllowedIPs           required; prefixes routed to the peer, e.g. 0.0.0.0/0.
//	                     DNSUpstream, Probe and HomeNetworks must lie inside.
//	PersistentKeepalive  seconds, or off; default off (25 is usual behind NAT).
//
// [Gateway]
//
//	LAN            required; the LAN prefix(es), e.g. 192.168.86.0/24 (no host
//	               bits; must not overlap the tunnel network).
//	LANInterface   required; the LAN interface, e.g. br0. It must exist and
//	               hold DNSListen's address: `fobgw check` says so at once,
//	               `fobgw run` waits up to 30 s for it (a bridge may come up
//	               after fobgw at boot), changing nothing meanwhile, then
//	               fails with exit 2.
//	Table          required; the LAN's routing table: a number (not 0, 253,
//	               254, 255) or a name from /etc/iproute2/rt_tables.
//	HomeNetworks   prefixes the gateway itself reaches through the tunnel
//	               (routes in the main table); default none.
//	DNSListen      required; address[:port] the LAN's DNS is answered on
//	               (UDP and TCP), e.g. 192.168.86.1:53. Must lie inside LAN
//	               (not the WAN address, not loopback: nothing but the
//	               WireGuard port listens on the WAN) and be LANInterface's.
//	DNSUpstream    required; address[:port] of the home DNS server, reached
//	               through the tunnel, e.g. 192.168.88.1.
//	Resolver       the local ISP's DNS server(s), address[:port], comma-
//	               separated, used only for the Endpoint's name; default: the
//	               nameservers of /etc/resolv.conf, read at each resolution.
//	               Must not lie in HomeNetworks, LAN or the tunnel network
//	               (Address), nor be DNSListen or DNSUpstream: the gateway's
//	               own lookups repair the tunnel, so they must never need it
//	               or its own forwarder. Loopback (a local stub) is fine.
//	Probe          address[:port] probed through the tunnel (DNS query; an
//	               ICMP port unreachable counts too, so any host works, e.g.
//	               the home router's tunnel address); default DNSUpstream.
//	ClampMSS       auto (MTU-40 for IPv4, MTU-60 for IPv6), a number from 536
//	               to MTU-40 (IPv6 gets 20 less), or off; default auto.
//	KillSwitch     on or off; default on. With on, the LAN's table keeps an
//	               unreachable default that outlives fobgw.
//	MetricsListen  address:port for Prometheus text at /metrics; empty
//	               disables; default 127.0.0.1:9586. Loopback or an address
//	               inside LAN only (not :9586 or 0.0.0.0:9586, which would
//	               serve the WAN too).
//
// # Memory
//
// fobgw builds wireguard-go with patches (patches/wireguard in the repository)
// that size packet buffers for the MTU: 2 KiB each, at most 4096 of them, reused
// and never freed, with a few 64 KiB buffers only where UDP GRO and GSO and TUN
// GRO coalesce, so offloads stay on. A packet that finds no free buffer or
// queue slot is dropped and counted, never waited for (the metric
// fobgw_wireguard_dropped_no_room_total); MTU is at most 2016 (MaxMTU). In the
// lab the peak RSS (VmHWM) stayed under 40 MiB with 8 TCP streams each way,
// against about 280 MiB for upstream wireguard-go, and fobgw carries that load
// under a 48 MiB hard memory limit (bench/RESULTS.md).
//
// `fobgw run` sets a soft memory limit (runtime/debug.SetMemoryLimit): three
// quarters of its cgroup's hard limit when it runs under one (MemoryMax= of the
// unit, cgroup v1 or v2), otherwise 48 MiB, what it was measured to need. The
// GOMEMLIMIT environment variable wins (GOMEMLIMIT=off for none); GOGC keeps
// its default.
package gateway
