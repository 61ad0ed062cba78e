// Package mssclamp lowers the TCP Maximum Segment Size option of SYN and
// SYN-ACK segments so that the segments of a connection fit the tunnel, and
// wraps a tun.Device (golang.zx2c4.com/wireguard/tun) to do so in both
// directions.
//
// This is the fix of "Step Four" of the FOB story: a server that never sees
// ICMP "fragmentation needed" (a PMTUD black hole) keeps sending 1500-byte
// segments with DF set, which cannot enter a 1420-byte tunnel. Lowering the
// MSS both sides announce in the handshake (RFC 9293 section 3.7.1, RFC 6691)
// keeps every segment small enough.
//
// Clamp works on one IP packet in place: IPv4 MSS <= mtu-40, IPv6 MSS <=
// mtu-60 (the fixed IP and TCP headers), with an incremental checksum update
// (RFC 1624). It never fails: anything it cannot or need not parse passes
// unchanged. Wrap puts it on the packet path of wireguard-go:
//
//	dev = mssclamp.Wrap(dev, 0)         // follow the TUN's MTU: 1420 -> MSS 1380 / 1360
//	dev = mssclamp.Wrap(dev, 1380+40)   // configured "ClampMSS = 1380": IPv4 1380, IPv6 1360
//
// A configured MSS is an IPv4 figure; the IPv6 clamp is then 20 lower, as
// IPv6's fixed header is 20 bytes longer.
//
// The package allocates nothing on the packet path and logs nothing; what it
// did is counted in Stats.
package mssclamp
