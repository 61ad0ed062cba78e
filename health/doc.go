// Package health keeps the tunnel's peer reachable and says how well the
// tunnel carries the LAN: the [Healer] probes through the tunnel, resolves
// the Endpoint's names (through Resolver, never the tunnel), walks the
// Endpoint list, reads the clock, and sets the peer's endpoint; the
// [LANPath] probes from the LAN address after each answered tunnel probe.
//
// Everything a Healer needs is given to [New] in a [Config]: the prober,
// the resolver, the peer, the clock and the subscribers that follow its
// [Event]s (the LAN path; the gateway's path MTU policy). Nothing is set on
// it afterwards. Its timing is the package's constants; the tests drive its
// step with a fake clock, and run the LAN path's loop under testing/synctest.
//
// What happens while no handshake succeeds (a captive portal in front of
// the WAN, say) belongs here too: it is the healer's knowledge. The rules
// behind the healing are told in docs/design.md, "Endpoint healing".
package health
