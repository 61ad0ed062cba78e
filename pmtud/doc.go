// Package pmtud finds the largest packet the tunnel carries both ways, with
// no help from ICMP errors, and keeps the tunnel's MTU at it: packetization
// layer path MTU discovery in the spirit of RFC 8899, with ICMP echo as the
// probe and the home router's kernel as the echo server.
//
// # Why
//
// wireguard-go wraps an inner packet of n bytes into a UDP datagram of
// n+60 bytes (n+80 over IPv6; Overhead), sent with DF. A path that carries
// less and drops ICMP "fragmentation needed" swallows every full-size packet
// without a word: the tunnel is up, small packets pass, downloads hang.
//
// # The probe's way
//
// A probe of n bytes must leave through wireguard-go exactly as a LAN packet
// of n bytes would, also when n is larger than the TUN's current MTU (to
// find out whether the path grew back), and the kernel refuses to send
// anything larger than the device's MTU (EMSGSIZE, whatever
// IP_MTU_DISCOVER says). So the probe is made beneath the kernel, in the
// tun.Device wireguard-go reads from:
//
//	Prober --UDP trigger (52 bytes)--> kernel --> TUN --> Device.Read: trigger rewritten
//	    in place into an ICMP echo request of n bytes, DF set --> wireguard-go --> path
//	home router's kernel: echo reply of n bytes --> path --> wireguard-go -->
//	    Device.Write: the reply taken out of the batch, handed to the Prober
//
// The trigger is a small UDP datagram from a socket bound to the TUN
// (DialTrigger); it wakes wireguard-go's blocking Read like any packet, so
// nothing else needs a hook. It carries a random key of the Device, so a
// LAN host cannot have its packets rewritten, and the key comes back in the
// echoed payload, so nothing but the home router's answer counts. The home
// router answers at the size asked, so a reply proves both directions; a
// reply that arrives fragmented or cut short does not count.
//
// Device.MTU reports the ceiling, not the TUN's MTU: wireguard-go pads every
// packet to a multiple of 16 bytes, capped at its tun.Device's MTU, and a
// constant cap makes a probe of n bytes as long on the wire as a LAN packet
// of n bytes, whatever the TUN's MTU is meanwhile. The Device must therefore
// be the outermost wrapper: one beneath it (mssclamp's, following the TUN's
// MTU) sees the TUN itself.
//
// On ordinary packets the Device costs one size comparison each way (and
// one protocol byte on the way in), and allocates nothing.
//
// # The search
//
// Searcher keeps the effective MTU between a floor (1280, IPv6's minimum)
// and the ceiling (the configured MTU; 1420 for MTU = auto, see Ceiling):
//
//   - a full round at start, every Interval (10 min), on Trigger (a failed
//     handshake, a new endpoint, a new underlay) and, while the tunnel is
//     down, after 1 s, 2 s, 4 s ... up to DownRetry (10 s): a small liveness
//     probe (a second one times the round trip for the probe timeout), a
//     probe of the current MTU, then a shrink or a grow;
//   - every ConfirmInterval (10 s), if packets larger than the floor crossed
//     the tunnel since (Device.Active), a probe of the current MTU: a path
//     that shrank is found while someone is hurt by it, and an idle tunnel
//     costs nothing;
//   - lower is safe: when the current MTU fails ConfirmTries times while the
//     small probe gets through, a binary search finds the largest size that
//     gets through (Tries per size, as a lost probe is not a too-big one) and
//     the MTU drops to it at once; if even the small probe is lost the
//     tunnel is down, not narrow, and the MTU stays;
//   - higher is careful: below the ceiling a larger size is searched every
//     RaiseInterval (1 min; doubled after each shrink that follows a grow,
//     up to Interval), and the MTU grows only after GrowSuccesses probes of
//     the larger size in a row got through.
//
// OnChange tells the caller the old and the new MTU; Status is the snapshot
// for status and metrics.
//
// # Wiring
//
//	ceiling := pmtud.Ceiling(cfg.MTU)                  // 0 = MTU = auto
//	tunDev, _ := tun.CreateTUN(name, ceiling)
//	var td tun.Device = mssclamp.Wrap(tunDev, 0)       // follows the TUN's MTU
//	pd := pmtud.Wrap(td, ceiling, pmtud.DefaultFloor)  // outermost
//	dev := device.NewDevice(pd, bind, logger)
//	// once the TUN is up with its address:
//	conn, _ := pmtud.DialTrigger(name, target)      // an IPv4 address home answers pings on
//	s := pmtud.NewSearcher(pmtud.Config{Ceiling: ceiling, Active: pd.Active,
//		OnChange: func(old, new int) { /* netlink: set the TUN's MTU; log once */ }},
//		pd.Prober(conn))
//	go s.Run(ctx)
//	// s.Trigger() when the endpoint changes, a handshake fails, the underlay changes
//
// Setting the TUN's MTU is all it takes: the kernel answers LAN hosts with
// "fragmentation needed" and UDP applications see it, and wireguard-go's TUN
// reports the change as an event that mssclamp follows.
//
// The target is any IPv4 address at home whose kernel answers ICMP echo
// through the tunnel: the home router's tunnel address (10.1.200.1 in the
// story) or a host on the home LAN. If nothing ever answers, even small
// probes are lost, the state stays "down" and the MTU stays at the ceiling:
// no worse than without discovery. Outer IPv6 needs nothing more: the probe
// measures the inner size whatever the outer header costs.
//
// Limits: a TCP connection opened before the MTU shrank keeps the MSS it
// was clamped to, so its full-size segments from the far end stay lost (the
// home side's MTU is not fobgw's); new connections fit. IPv4 probes only: a
// tunnel without an IPv4 address cannot be probed.
package pmtud
