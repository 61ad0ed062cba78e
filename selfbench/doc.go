// Package selfbench measures fobgw's data path on the machine it runs on, with nothing else
// installed and no privileges: two WireGuard devices in one process, each the stack `fobgw run`
// builds (the patched wireguard-go over the path-MTU wrapper over the MSS clamp), joined over
// loopback UDP through the ordinary socket path (UDP GSO and GRO where the kernel has them).
//
// The packets come from a light generator, not a TCP stack: each stream is a run of IPv4 TCP
// segments of the tunnel's MTU (1420 bytes, 1380 of payload), with a window of packets in
// flight that the receiving end opens again as they arrive, so a stream is paced by the
// tunnel as a TCP stream is, without a TCP stack's own cost (a netstack TCP at both ends, in
// Go, would cost about as much CPU as the tunnel and be counted in its figure). The in-memory
// TUNs copy a packet in and count it out; the kernel's TUN is not involved.
//
// Both ends run on the same cores, as in the published figures that use the same method
// (cyyself's wg-bench: both tunnel ends on the device), so a board's figure here compares
// with those, not with a gateway forwarding a LAN's traffic (see Published).
package selfbench
