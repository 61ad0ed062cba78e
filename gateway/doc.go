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
// DNSListen is a local address), then: the kill switch and LAN rules
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
// After 3 consecutive misses, or a handshake older than 135 s, the name is
// re-resolved and the endpoint set to an address the previous resolution
// did not have, else to the next record (rotating through all of them).
// While the record has not changed yet, every further miss asks again. In
// the worst case the new endpoint is set about 12 s after the home address
// changes, and the handshake follows within REKEY_TIMEOUT (5 s).
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
//	LANInterface   required; the LAN interface, e.g. br0.
//	Table          required; the LAN's routing table: a number (not 0, 253,
//	               254, 255) or a name from /etc/iproute2/rt_tables.
//	HomeNetworks   prefixes the gateway itself reaches through the tunnel
//	               (routes in the main table); default none.
//	DNSListen      required; address[:port] the LAN's DNS is answered on
//	               (UDP and TCP), e.g. 192.168.86.1:53. Must be a local address.
//	DNSUpstream    required; address[:port] of the home DNS server, reached
//	               through the tunnel, e.g. 192.168.88.1.
//	Resolver       the local ISP's DNS server(s), address[:port], comma-
//	               separated, used only for the Endpoint's name; default: the
//	               nameservers of /etc/resolv.conf. Must not lie in HomeNetworks.
//	Probe          address[:port] probed through the tunnel (DNS query; an
//	               ICMP port unreachable counts too, so any host works, e.g.
//	               the home router's tunnel address); default DNSUpstream.
//	ClampMSS       auto (MTU-40 for IPv4, MTU-60 for IPv6), a number from 536
//	               to MTU-40 (IPv6 gets 20 less), or off; default auto.
//	KillSwitch     on or off; default on. With on, the LAN's table keeps an
//	               unreachable default that outlives fobgw.
//	MetricsListen  address:port for Prometheus text at /metrics; empty
//	               disables; default 127.0.0.1:9586.
package gateway
