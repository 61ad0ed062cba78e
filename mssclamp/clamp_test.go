package mssclamp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
)

// linuxSYN4 is a SYN as Linux sends it from the FOB LAN, field by field.
var linuxSYN4 = []byte{
	// IPv4 header (RFC 791)
	0x45,       // version 4, IHL 5 (20 bytes)
	0x00,       // DSCP 0, ECN 0
	0x00, 0x3c, // total length 60
	0x1c, 0x46, // identification
	0x40, 0x00, // flags DF, fragment offset 0
	0x40,       // TTL 64
	0x06,       // protocol TCP
	0x00, 0x00, // header checksum (not checked by Clamp)
	192, 168, 86, 254, // source 192.168.86.254
	203, 0, 113, 80, // destination 203.0.113.80
	// TCP header (RFC 9293)
	0xc0, 0x01, // source port 49153
	0x01, 0xbb, // destination port 443
	0x6a, 0x2f, 0x1b, 0x01, // sequence number
	0x00, 0x00, 0x00, 0x00, // acknowledgment number
	0xa0,       // data offset 10 (40 bytes), reserved 0
	0x02,       // flags SYN
	0xfa, 0xf0, // window 64240
	0x00, 0x00, // checksum (set by the test)
	0x00, 0x00, // urgent pointer
	// options, Linux order
	0x02, 0x04, 0x05, 0xb4, // MSS 1460
	0x04, 0x02, // SACK permitted
	0x08, 0x0a, 0x9a, 0x2b, 0x4c, 0x11, 0x00, 0x00, 0x00, 0x00, // timestamps
	0x01,             // NOP
	0x03, 0x03, 0x07, // window scale 7
}

// ipv4Header is an IPv4 header for TCP; total length and header checksum are
// set by pkt4.
func ipv4Header() []byte {
	return []byte{
		0x45,       // version 4, IHL 5
		0x00,       // DSCP, ECN
		0x00, 0x00, // total length (set by pkt4)
		0xbe, 0xef, // identification
		0x40, 0x00, // flags DF, fragment offset 0
		0x40,       // TTL 64
		0x06,       // protocol TCP
		0x00, 0x00, // header checksum (set by pkt4)
		192, 168, 86, 254, // source
		203, 0, 113, 80, // destination
	}
}

// ipv6Header is an IPv6 header; payload length is set by pkt6.
func ipv6Header(next byte) []byte {
	return []byte{
		0x60, 0x00, 0x00, 0x00, // version 6, traffic class 0, flow label 0
		0x00, 0x00, // payload length (set by pkt6)
		next,                                                          // next header
		0x40,                                                          // hop limit 64
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // source 2001:db8::2
		0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, // destination 2001:db8:1::50
	}
}

// tcpHeader is a TCP header with flags and options; the data offset is
// rounded up to cover opts, the checksum is set by pkt4 or pkt6.
func tcpHeader(flags byte, opts []byte) []byte {
	h := []byte{
		0xc0, 0x01, // source port 49153
		0x01, 0xbb, // destination port 443
		0x00, 0x00, 0x10, 0x00, // sequence number
		0x00, 0x00, 0x20, 0x00, // acknowledgment number
		0x50,       // data offset (set below)
		flags,      // flags
		0xff, 0xff, // window
		0x00, 0x00, // checksum (set by pkt4/pkt6)
		0x00, 0x00, // urgent pointer
	}
	h = append(h, opts...)
	h[12] = byte((len(h)+3)/4) << 4
	return h
}

const (
	flagSYN    = 0x02
	flagSYNACK = 0x12
	flagACK    = 0x10
	flagPSHACK = 0x18
)

// pkt4 joins an IPv4 header (IHL adjusted to ipOpts) and a segment, and sets
// lengths and checksums.
func pkt4(ipOpts, seg []byte) []byte {
	p := append(ipv4Header(), ipOpts...)
	p[0] = 0x40 | byte(len(p)/4)
	p = append(p, seg...)
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	fixChecksums(p)
	return p
}

// pkt6 joins an IPv6 header, extension headers ext (the first being of type
// next) and a segment, and sets the payload length and checksums.
func pkt6(next byte, ext, seg []byte) []byte {
	p := append(ipv6Header(next), ext...)
	p = append(p, seg...)
	binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
	fixChecksums(p)
	return p
}

// fixChecksums recomputes the IPv4 header and TCP checksums of p, if any.
func fixChecksums(p []byte) {
	if p[0]>>4 == 4 {
		ihl := int(p[0]&15) * 4
		p[10], p[11] = 0, 0
		binary.BigEndian.PutUint16(p[10:], ^fold(sum16(p[:ihl])))
	}
	if r, ok := refParse(p); ok && r.end >= r.off+18 && r.end <= len(p) {
		binary.BigEndian.PutUint16(p[r.off+16:], refChecksum(p, r))
	}
}

// ext returns an IPv6 extension header of the given next header and 8-octet
// units beyond the first, filled with PadN.
func ext(next byte, units int) []byte {
	h := make([]byte, 8*(units+1))
	h[0] = next             // next header
	h[1] = byte(units)      // header extension length
	h[2] = 0x01             // PadN option
	h[3] = byte(len(h) - 4) // PadN length
	return h
}

// fragHeader is an IPv6 Fragment header (RFC 8200 section 4.5).
func fragHeader(next byte, offset8 uint16, more bool) []byte {
	fo := offset8 << 3
	if more {
		fo |= 1
	}
	return []byte{
		next,                    // next header
		0x00,                    // reserved
		byte(fo >> 8), byte(fo), // fragment offset, res, M flag
		0x00, 0x00, 0x12, 0x34, // identification
	}
}

func with(p []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(p)) }

// Option lists of the usual stacks, with the MSS they carry and the same list
// after clamping to 1380 (IPv4, MTU 1420) and 1360 (IPv6, MTU 1420).
var (
	linuxOpts = []byte{
		0x02, 0x04, 0x05, 0xb4, // MSS 1460
		0x04, 0x02, // SACK permitted
		0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 0, // timestamps
		0x01,             // NOP
		0x03, 0x03, 0x07, // window scale 7
	}
	linuxOpts1380 = []byte{0x02, 0x04, 0x05, 0x64, 0x04, 0x02, 0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 0, 0x01, 0x03, 0x03, 0x07}
	linuxOpts1360 = []byte{0x02, 0x04, 0x05, 0x50, 0x04, 0x02, 0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 0, 0x01, 0x03, 0x03, 0x07}
	windowsOpts   = []byte{
		0x02, 0x04, 0x05, 0xb4, // MSS 1460
		0x01,             // NOP
		0x03, 0x03, 0x08, // window scale 8
		0x01, 0x01, // NOP NOP
		0x04, 0x02, // SACK permitted
	}
	windowsOpts1380 = []byte{0x02, 0x04, 0x05, 0x64, 0x01, 0x03, 0x03, 0x08, 0x01, 0x01, 0x04, 0x02}
	macOpts         = []byte{
		0x02, 0x04, 0x05, 0xb4, // MSS 1460
		0x01,             // NOP
		0x03, 0x03, 0x06, // window scale 6
		0x01, 0x01, // NOP NOP
		0x08, 0x0a, 0x3a, 0x1b, 0x2c, 0x4d, 0, 0, 0, 0, // timestamps
		0x04, 0x02, // SACK permitted
		0x00, 0x00, // End of Option List, padding
	}
	macOpts1380 = []byte{0x02, 0x04, 0x05, 0x64, 0x01, 0x03, 0x03, 0x06, 0x01, 0x01, 0x08, 0x0a, 0x3a, 0x1b, 0x2c, 0x4d, 0, 0, 0, 0, 0x04, 0x02, 0x00, 0x00}
	oddOpts     = []byte{
		0x01,                   // NOP: MSS value now at an odd offset
		0x02, 0x04, 0xff, 0xd7, // MSS 65495 (loopback)
		0x01, 0x01, 0x01, // NOP NOP NOP
	}
	oddOpts1380 = []byte{0x01, 0x02, 0x04, 0x05, 0x64, 0x01, 0x01, 0x01}
	twoMSSOpts  = []byte{
		0x02, 0x04, 0x05, 0xb4, // MSS 1460
		0x01,                   // NOP
		0x02, 0x04, 0x23, 0x28, // MSS 9000, a second one at an odd offset
		0x01, 0x01, 0x01, // NOP padding
	}
	twoMSSOpts1380 = []byte{0x02, 0x04, 0x05, 0x64, 0x01, 0x02, 0x04, 0x05, 0x64, 0x01, 0x01, 0x01}
)

type clampCase struct {
	name string
	pkt  []byte
	mtu  int
	want []byte // the packet after Clamp; nil: unchanged
	res  result
}

func clampCases() []clampCase {
	linux4 := bytes.Clone(linuxSYN4)
	fixChecksums(linux4)
	linux4want := with(linux4, func(p []byte) []byte { p[42], p[43] = 0x05, 0x64; fixChecksums(p); return p })
	syn4 := func(flags byte, opts []byte) []byte { return pkt4(nil, tcpHeader(flags, opts)) }
	syn6 := func(flags byte, opts []byte) []byte { return pkt6(protoTCP, nil, tcpHeader(flags, opts)) }
	data := bytes.Repeat([]byte{0xab}, 100)
	return []clampCase{
		// IPv4 SYNs of the usual stacks
		{name: "v4 linux SYN literal", pkt: linux4, mtu: 1420, want: linux4want, res: clamped},
		{name: "v4 linux SYN", pkt: syn4(flagSYN, linuxOpts), mtu: 1420, want: syn4(flagSYN, linuxOpts1380), res: clamped},
		{name: "v4 windows SYN", pkt: syn4(flagSYN, windowsOpts), mtu: 1420, want: syn4(flagSYN, windowsOpts1380), res: clamped},
		{name: "v4 macos SYN", pkt: syn4(flagSYN, macOpts), mtu: 1420, want: syn4(flagSYN, macOpts1380), res: clamped},
		{name: "v4 linux SYN-ACK", pkt: syn4(flagSYNACK, linuxOpts), mtu: 1420, want: syn4(flagSYNACK, linuxOpts1380), res: clamped},
		{name: "v4 MSS at odd offset", pkt: syn4(flagSYN, oddOpts), mtu: 1420, want: syn4(flagSYN, oddOpts1380), res: clamped},
		{name: "v4 two MSS options", pkt: syn4(flagSYN, twoMSSOpts), mtu: 1420, want: syn4(flagSYN, twoMSSOpts1380), res: clamped},
		{name: "v4 IP options IHL 6", pkt: pkt4([]byte{0x94, 0x04, 0x00, 0x00} /* router alert */, tcpHeader(flagSYN, linuxOpts)),
			mtu: 1420, want: pkt4([]byte{0x94, 0x04, 0x00, 0x00}, tcpHeader(flagSYN, linuxOpts1380)), res: clamped},
		{name: "v4 SYN with payload (TFO)", pkt: pkt4(nil, append(tcpHeader(flagSYN, linuxOpts), data...)),
			mtu: 1420, want: pkt4(nil, append(tcpHeader(flagSYN, linuxOpts1380), data...)), res: clamped},
		{name: "v4 ethernet-style trailer beyond total length",
			pkt:  append(syn4(flagSYN, windowsOpts), 0, 0, 0, 0),
			mtu:  1420,
			want: append(syn4(flagSYN, windowsOpts1380), 0, 0, 0, 0), res: clamped},
		{name: "v4 first fragment", pkt: with(syn4(flagSYN, linuxOpts), func(p []byte) []byte { p[6] = 0x20; fixChecksums(p); return p }),
			mtu: 1420, want: with(syn4(flagSYN, linuxOpts1380), func(p []byte) []byte { p[6] = 0x20; fixChecksums(p); return p }), res: clamped},
		{name: "v4 MSS to 65535 limit", pkt: syn4(flagSYN, oddOpts), mtu: 65535, res: passed},
		{name: "v4 MSS limit 1", pkt: syn4(flagSYN, linuxOpts), mtu: 41,
			want: syn4(flagSYN, []byte{0x02, 0x04, 0x00, 0x01, 0x04, 0x02, 0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 0, 0x01, 0x03, 0x03, 0x07}), res: clamped},

		// IPv4 left alone
		{name: "v4 MSS already low", pkt: syn4(flagSYN, []byte{0x02, 0x04, 0x05, 0x14 /* 1300 */}), mtu: 1420, res: passed},
		{name: "v4 MSS equal to limit", pkt: syn4(flagSYN, []byte{0x02, 0x04, 0x05, 0x64 /* 1380 */}), mtu: 1420, res: passed},
		{name: "v4 no MSS option", pkt: syn4(flagSYN, []byte{0x01, 0x01, 0x04, 0x02}), mtu: 1420, res: passed},
		{name: "v4 no options", pkt: syn4(flagSYN, nil), mtu: 1420, res: passed},
		{name: "v4 MSS after End of Options", pkt: syn4(flagSYN, []byte{0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4}), mtu: 1420, res: passed},
		{name: "v4 garbage after End of Options", pkt: syn4(flagSYN, []byte{0x01, 0x00, 0x08, 0x00}), mtu: 1420, res: passed},
		{name: "v4 ACK carrying MSS", pkt: syn4(flagACK, linuxOpts), mtu: 1420, res: passed},
		{name: "v4 data", pkt: pkt4(nil, append(tcpHeader(flagPSHACK, nil), data...)), mtu: 1420, res: passed},
		{name: "v4 mtu 40 leaves no room", pkt: syn4(flagSYN, linuxOpts), mtu: 40, res: passed},
		{name: "v4 mtu 0", pkt: syn4(flagSYN, linuxOpts), mtu: 0, res: passed},
		{name: "v4 mtu negative", pkt: syn4(flagSYN, linuxOpts), mtu: -5, res: passed},
		{name: "v4 non-first fragment", pkt: with(syn4(flagSYN, linuxOpts), func(p []byte) []byte { p[6], p[7] = 0x00, 0xb9; fixChecksums(p); return p }), mtu: 1420, res: passed},
		{name: "v4 UDP", pkt: with(syn4(flagSYN, linuxOpts), func(p []byte) []byte { p[9] = 17; return p }), mtu: 1420, res: passed},
		{name: "v4 ICMP", pkt: with(syn4(flagSYN, linuxOpts), func(p []byte) []byte { p[9] = 1; return p }), mtu: 1420, res: passed},

		// IPv4 malformed
		{name: "v4 zero-length option", pkt: syn4(flagSYN, []byte{0x02, 0x04, 0x05, 0xb4, 0x08, 0x00, 0x01, 0x01}), mtu: 1420, res: malformed},
		{name: "v4 option length 1", pkt: syn4(flagSYN, []byte{0x02, 0x04, 0x05, 0xb4, 0x03, 0x01, 0x01, 0x01}), mtu: 1420, res: malformed},
		{name: "v4 overlong option after MSS", pkt: syn4(flagSYN, []byte{0x02, 0x04, 0x05, 0xb4, 0x08, 0x0a, 0x00, 0x00}), mtu: 1420, res: malformed},
		{name: "v4 overlong MSS", pkt: syn4(flagSYN, []byte{0x01, 0x01, 0x02, 0x08, 0x05, 0xb4, 0x00, 0x00}), mtu: 1420, res: malformed},
		{name: "v4 MSS length 3", pkt: syn4(flagSYN, []byte{0x02, 0x03, 0x05, 0x01}), mtu: 1420, res: malformed},
		{name: "v4 option kind without length", pkt: syn4(flagSYN, []byte{0x02, 0x04, 0x05, 0xb4, 0x01, 0x01, 0x01, 0x03}), mtu: 1420, res: malformed},
		{name: "v4 data offset past packet", pkt: with(syn4(flagSYN, linuxOpts), func(p []byte) []byte { p[32] = 0xf0; return p }), mtu: 1420, res: malformed},
		{name: "v4 data offset 4", pkt: with(syn4(flagSYN, linuxOpts), func(p []byte) []byte { p[32] = 0x40; return p }), mtu: 1420, res: malformed},
		{name: "v4 options cut short", pkt: syn4(flagSYN, linuxOpts)[:50], mtu: 1420, res: malformed},
		{name: "v4 total length beyond packet", pkt: with(syn4(flagSYN, linuxOpts), func(p []byte) []byte { p[3]++; return p }), mtu: 1420, res: malformed},
		{name: "v4 total length inside TCP header", pkt: with(syn4(flagSYN, linuxOpts), func(p []byte) []byte { p[2], p[3] = 0, 30; return p }), mtu: 1420, res: malformed},
		{name: "v4 TCP header cut short", pkt: syn4(flagSYN, linuxOpts)[:39], mtu: 1420, res: malformed},
		{name: "v4 IHL 4", pkt: with(syn4(flagSYN, linuxOpts), func(p []byte) []byte { p[0] = 0x44; return p }), mtu: 1420, res: malformed},
		{name: "v4 IHL 15 past packet", pkt: with(syn4(flagSYN, nil), func(p []byte) []byte { p[0] = 0x4f; return p }), mtu: 1420, res: malformed},

		// IPv6
		{name: "v6 linux SYN", pkt: syn6(flagSYN, linuxOpts), mtu: 1420, want: syn6(flagSYN, linuxOpts1360), res: clamped},
		{name: "v6 linux SYN-ACK", pkt: syn6(flagSYNACK, linuxOpts), mtu: 1420, want: syn6(flagSYNACK, linuxOpts1360), res: clamped},
		{name: "v6 MSS at odd offset", pkt: syn6(flagSYN, oddOpts), mtu: 1440, want: syn6(flagSYN, oddOpts1380), res: clamped},
		{name: "v6 hop-by-hop", pkt: pkt6(protoHopByHop, ext(protoTCP, 0), tcpHeader(flagSYN, linuxOpts)),
			mtu: 1420, want: pkt6(protoHopByHop, ext(protoTCP, 0), tcpHeader(flagSYN, linuxOpts1360)), res: clamped},
		{name: "v6 hop-by-hop, routing, destination options",
			pkt:  pkt6(protoHopByHop, bytes.Join([][]byte{ext(protoRouting, 0), ext(protoDestOpts, 2), ext(protoTCP, 1)}, nil), tcpHeader(flagSYN, windowsOpts)),
			mtu:  1440,
			want: pkt6(protoHopByHop, bytes.Join([][]byte{ext(protoRouting, 0), ext(protoDestOpts, 2), ext(protoTCP, 1)}, nil), tcpHeader(flagSYN, windowsOpts1380)), res: clamped},
		{name: "v6 first fragment", pkt: pkt6(protoFragment, fragHeader(protoTCP, 0, true), tcpHeader(flagSYN, linuxOpts)),
			mtu: 1420, want: pkt6(protoFragment, fragHeader(protoTCP, 0, true), tcpHeader(flagSYN, linuxOpts1360)), res: clamped},
		{name: "v6 non-first fragment", pkt: pkt6(protoFragment, fragHeader(protoTCP, 8, false), tcpHeader(flagSYN, linuxOpts)), mtu: 1420, res: passed},
		{name: "v6 AH", pkt: pkt6(51, []byte{protoTCP, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0}, tcpHeader(flagSYN, linuxOpts)), mtu: 1420, res: passed},
		{name: "v6 ESP", pkt: pkt6(50, []byte{0, 0, 0, 1, 0, 0, 0, 1}, tcpHeader(flagSYN, linuxOpts)), mtu: 1420, res: passed},
		{name: "v6 no next header", pkt: pkt6(59, nil, tcpHeader(flagSYN, linuxOpts)), mtu: 1420, res: passed},
		{name: "v6 UDP", pkt: pkt6(17, nil, tcpHeader(flagSYN, linuxOpts)), mtu: 1420, res: passed},
		{name: "v6 MSS already low", pkt: syn6(flagSYN, []byte{0x02, 0x04, 0x04, 0xc4 /* 1220 */}), mtu: 1420, res: passed},
		{name: "v6 mtu 60 leaves no room", pkt: syn6(flagSYN, linuxOpts), mtu: 60, res: passed},
		{name: "v6 data", pkt: pkt6(protoTCP, nil, append(tcpHeader(flagACK, nil), data...)), mtu: 1420, res: passed},
		{name: "v6 jumbogram length 0", pkt: with(syn6(flagSYN, linuxOpts), func(p []byte) []byte { p[4], p[5] = 0, 0; return p }),
			mtu: 1420, want: with(syn6(flagSYN, linuxOpts1360), func(p []byte) []byte { p[4], p[5] = 0, 0; return p }), res: clamped},
		{name: "v6 extension header cut short", pkt: pkt6(protoHopByHop, ext(protoTCP, 0)[:4], nil), mtu: 1420, res: malformed},
		{name: "v6 extension header past payload", pkt: pkt6(protoHopByHop, ext(protoTCP, 0), tcpHeader(flagSYN, linuxOpts))[:60], mtu: 1420, res: malformed},
		{name: "v6 payload length shorter than TCP header, ACK", pkt: with(pkt6(protoTCP, nil, tcpHeader(flagACK, nil)), func(p []byte) []byte { p[5] = 14; return p }), mtu: 1420, res: passed},
		{name: "v6 payload length shorter than TCP header, SYN", pkt: with(syn6(flagSYN, nil), func(p []byte) []byte { p[5] = 14; return p }), mtu: 1420, res: malformed},
		{name: "v4 total length shorter than TCP header, ACK", pkt: with(pkt4(nil, tcpHeader(flagACK, nil)), func(p []byte) []byte { p[3] = 30; return p }), mtu: 1420, res: passed},
		{name: "v6 TCP header cut short", pkt: syn6(flagSYN, linuxOpts)[:55], mtu: 1420, res: malformed},
		{name: "v6 payload length beyond packet", pkt: with(syn6(flagSYN, linuxOpts), func(p []byte) []byte { p[5]++; return p }), mtu: 1420, res: malformed},
		{name: "v6 zero-length option", pkt: syn6(flagSYN, []byte{0x02, 0x04, 0x05, 0xb4, 0x05, 0x00, 0x00, 0x00}), mtu: 1420, res: malformed},

		// not IP
		{name: "empty", pkt: []byte{}, mtu: 1420, res: passed},
		{name: "nil", pkt: nil, mtu: 1420, res: passed},
		{name: "one byte", pkt: []byte{0x45}, mtu: 1420, res: passed},
		{name: "v4 header only 19 bytes", pkt: linux4[:19], mtu: 1420, res: passed},
		{name: "v6 header only 39 bytes", pkt: syn6(flagSYN, linuxOpts)[:39], mtu: 1420, res: passed},
		{name: "version 5", pkt: with(linux4, func(p []byte) []byte { p[0] = 0x55; return p }), mtu: 1420, res: passed},
	}
}

func TestClamp(t *testing.T) {
	for _, tc := range clampCases() {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want == nil {
				want = tc.pkt
			}
			if len(want) != len(tc.pkt) {
				t.Fatalf("bad case: want %d bytes, packet %d", len(want), len(tc.pkt))
			}
			got := bytes.Clone(tc.pkt)
			changed := Clamp(got, tc.mtu)
			if changed != (tc.want != nil) {
				t.Errorf("Clamp = %v, want %v", changed, tc.want != nil)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("packet after Clamp:\n got %x\nwant %x", got, want)
			}
			if changed {
				r, ok := refParse(got)
				if !ok || !refChecksumOK(got, r) {
					t.Errorf("TCP checksum invalid after Clamp (full recomputation)")
				}
			}
			if r := classify(bytes.Clone(tc.pkt), tc.mtu); r != tc.res {
				t.Errorf("classify = %v, want %v", r, tc.res)
			}
			if fastPass(tc.pkt) && tc.res != passed {
				t.Errorf("fastPass skips a packet whose result is %v", tc.res)
			}
			if ref := refClampable(tc.pkt, tc.mtu); ref != (tc.want != nil) {
				t.Errorf("reference says clampable = %v, case says %v", ref, tc.want != nil)
			}
			if Clamp(got, tc.mtu) {
				t.Errorf("second Clamp changed the packet again")
			}
		})
	}
}

func (r result) String() string {
	switch r {
	case passed:
		return "passed"
	case clamped:
		return "clamped"
	case malformed:
		return "malformed"
	}
	return fmt.Sprintf("result(%d)", uint8(r))
}

// TestChecksumUpdateEveryValue checks the incremental update against full
// recomputation for MSS values above the limit at both alignments, and for
// every 16-bit value of a sequence number word, which walks the checksum
// through all its values including the 0x0000/0xffff corner.
func TestChecksumUpdateEveryValue(t *testing.T) {
	for _, layout := range []struct {
		opts []byte
		at   int // offset of the MSS value in the packet
	}{
		{[]byte{0x02, 0x04, 0, 0}, 20 + 20 + 2},                         // even
		{[]byte{0x01, 0x02, 0x04, 0, 0, 0x01, 0x01, 0x01}, 20 + 20 + 3}, // odd
	} {
		check := func(mss, seq uint16) {
			t.Helper()
			p := pkt4(nil, tcpHeader(flagSYN, layout.opts))
			binary.BigEndian.PutUint16(p[layout.at:], mss)
			binary.BigEndian.PutUint16(p[26:], seq) // low half of the sequence number
			fixChecksums(p)
			if !Clamp(p, 1420) {
				t.Fatalf("mss %d seq %#x at %d: not clamped", mss, seq, layout.at)
			}
			if got := binary.BigEndian.Uint16(p[layout.at:]); got != 1380 {
				t.Fatalf("mss %d at %d: got %d, want 1380", mss, layout.at, got)
			}
			if r, _ := refParse(p); !refChecksumOK(p, r) {
				t.Fatalf("mss %d seq %#x at %d: checksum %#x invalid after clamp, want %#x",
					mss, seq, layout.at, binary.BigEndian.Uint16(p[36:]), refChecksum(p, r))
			}
		}
		for mss := 1381; mss < 65536; mss += 97 {
			for _, seq := range []uint16{0, 1, 0x1234, 0xfffe, 0xffff} {
				check(uint16(mss), seq)
			}
		}
		for seq := range 65536 {
			check(1460, uint16(seq))
		}
	}
}

func TestClampAllocs(t *testing.T) {
	for _, tc := range clampCases() {
		buf := bytes.Clone(tc.pkt)
		if n := testing.AllocsPerRun(100, func() {
			copy(buf, tc.pkt)
			Clamp(buf, tc.mtu)
		}); n != 0 {
			t.Errorf("%s: %v allocations per Clamp, want 0", tc.name, n)
		}
	}
}
