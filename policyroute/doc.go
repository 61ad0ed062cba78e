// Package policyroute owns the FOB's policy routing: a routing table whose
// default route is the tunnel, a source rule that sends the LAN (and only the
// LAN) to it, a kill switch that outlives the process, routes to the home
// networks for the gateway's own traffic, and the sysctls forwarding needs.
//
// The desired state is plain data ([Desired], [State]); a [Router] applies it
// idempotently through a [netlink.Handle] bound to one network namespace,
// repairs drift ([Router.Repair]) and removes exactly what it installed
// ([Router.Remove]). It knows netlink and nothing of WireGuard.
//
// # Ownership
//
// Every route and rule fobgw installs carries the rtnetlink protocol number
// [Protocol] (routes: rtm_protocol; rules: FRA_PROTOCOL, Linux >= 4.17).
// Anything without it belongs to someone else and is never changed or
// deleted, so `ip route`/`ip rule` entries the user made survive Apply and
// Remove, and a changed configuration still cleans up the old entries.
// The LAN's table is the exception that proves the rule: it belongs to
// fobgw, so a route of another program in it (or a main-table route for
// exactly a home network that would beat fobgw's) is reported as
// [ErrForeignRoute], naming the `ip route del` that removes it, but still
// never deleted. An on-link route for exactly a home network on another
// interface is no such route: it is a network the gateway is attached to
// that uses home's addresses (a hotel's Wi-Fi), and while it lasts fobgw
// leaves out its home routes there that would win over it, keeping the kill
// switch's beneath it ([Router.HomeNetworksOnLink]).
//
// # The kill switch
//
// The LAN rule selects by source; a last rule, from any source on the LAN
// interface to the same table ([RulePriorityOther]), takes the packets whose
// source is not the LAN's, so they too find the tunnel or the kill switch and
// never fall through to the main table: for IPv4 always (fobgw turns IPv4
// forwarding on whatever the LAN; with a LAN of IPv6 alone the table holds
// an IPv4 kill switch for them), for IPv6 with an IPv6 LAN (the only case
// fobgw turns IPv6 forwarding on).
//
// On Linux a rule falls through to the next one when its table holds no
// matching route. With a userspace tunnel the tunnel route vanishes with the
// process, so without a kill switch a crash would send the LAN out through
// the local ISP. With Config.KillSwitch the table also holds an
// `unreachable default` at metric [MetricKillSwitch]: it is installed before
// the tunnel exists ([Router.ApplyKillSwitch]), needs no interface, and stays
// when the process dies or stops with Remove(true). LAN clients then get an
// immediate ICMP "network unreachable" instead of a leak or a hang. The same
// holds for the home networks in the main table, for the gateway's own
// traffic.
//
// # Local breakout
//
// With Config.BypassMark, one rule per LAN prefix ahead of the LAN's
// (`from 192.168.86.0/24 iif br0 fwmark M/M lookup main priority 5199`)
// sends the LAN's marked packets to the main table, the local ISP's; the
// unmarked keep the LAN's table and its kill switch. If the main table has
// no route for a marked packet, it falls through to the LAN's table: the
// kill switch, never a leak. The rule is a rule like the others: Remove(true)
// keeps it with the kill switch, so after a crash or a stop a device goes
// out directly exactly as long as whoever marks its packets (fobgw's
// nftables table) still does, and `fobgw down` (Remove(false)) takes it.
// A marked packet needs no src_valid_mark: the reverse-path check of a
// LAN source coming in on the LAN interface finds the LAN's connected
// route in the main table whatever the mark (the LAN rule selects by input
// interface, which the check does not have), and the replies come from
// the WAN to a LAN address, which only the main table routes.
//
// # Sysctls
//
// net.ipv4.ip_forward=1, net.ipv6.conf.all.forwarding=1 (only with an IPv6
// LAN; note that this also makes the kernel ignore router advertisements on
// interfaces with accept_ra=1) and net.ipv4.conf.<tunnel>.rp_filter=2 (loose;
// the effective value is the maximum of "all" and the interface, so a strict
// "all" no longer drops return traffic from the tunnel). They are written
// through /proc/sys, which the kernel resolves against the network namespace
// of the calling OS thread: call Apply and Repair from a thread in the
// namespace of the handle, or pass [WithNetNS]. Like wg-quick, Remove does not
// restore them: other services on the router may rely on forwarding, and the
// per-tunnel rp_filter disappears with the tunnel interface. A caller that
// wants forwarding back as it was (the gateway does, with KillSwitch off)
// reads it with [Router.SaveSysctls] before the first change and writes it
// back with [Router.RestoreSysctls]; both honour WithSysctlRoot and
// WithNetNS.
package policyroute

const (
	// Protocol is the rtnetlink protocol number that marks fobgw's routes and
	// rules ("proto 70" in ip(8) output). 70 (ASCII 'F') is not assigned in
	// the kernel's include/uapi/linux/rtnetlink.h (RTPROT_*: 0-4, 8-18, 42,
	// 99, 186-192) nor in iproute2's /etc/iproute2/rt_protos.
	Protocol = 70

	// RulePriority is the priority of the LAN rule: after the local table (0),
	// well before the main table (32766) and the rules wg-quick uses (32764,
	// 32765), so that a default route in main never sees LAN traffic.
	RulePriority = 5200

	// RulePriorityOther is the priority of the rule after the LAN's that
	// sends everything else coming in on the LAN interface to the LAN's
	// table (`from all iif br0 lookup T`): a device with a static address
	// of another network, or a bridge whose prefix is wider than LAN, meets
	// the tunnel or the kill switch too, never the main table's default
	// through the local ISP.
	RulePriorityOther = RulePriority + 1

	// RulePriorityBypass is the priority of the local breakout's rule
	// (Config.BypassMark): just ahead of the LAN rule, so that marked LAN
	// packets take the main table and everything else the LAN's.
	RulePriorityBypass = RulePriority - 1

	// MetricTunnel is the metric of the routes through the tunnel.
	MetricTunnel = 100

	// MetricKillSwitch is the metric of the unreachable kill-switch routes;
	// higher than MetricTunnel, so they answer only when the tunnel route is
	// gone.
	MetricKillSwitch = 4000
)
