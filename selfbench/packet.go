package selfbench

import "encoding/binary"

// The generated packets: IPv4 (RFC 791) carrying a TCP segment (RFC 9293) with ACK and PSH
// set and no options, PacketSize bytes long, from 10.66.0.1 (or .2) port basePort+stream to
// the other end's port 5201. Only the sequence number changes from packet to packet; both
// checksums are valid.
const (
	PacketSize  = 1420 // the tunnel MTU fobgw uses by default
	ipv4Len     = 20
	tcpLen      = 20
	PayloadSize = PacketSize - ipv4Len - tcpLen

	basePort = 40000 // source port of stream 0
	dstPort  = 5201

	offSrcPort = ipv4Len + 0
	offSeq     = ipv4Len + 4
	offTCPSum  = ipv4Len + 16
)

// template returns the first packet of stream i from src to dst (the last bytes of the
// tunnel addresses).
func template(i int, src, dst byte) [PacketSize]byte {
	var p [PacketSize]byte
	p[0] = 0x45                                   // version 4, header 20 bytes
	binary.BigEndian.PutUint16(p[2:], PacketSize) // total length
	binary.BigEndian.PutUint16(p[6:], 0x4000)     // don't fragment
	p[8] = 64                                     // TTL
	p[9] = 6                                      // TCP
	copy(p[12:16], []byte{10, 66, 0, src})
	copy(p[16:20], []byte{10, 66, 0, dst})
	binary.BigEndian.PutUint16(p[10:], ^fold(sum(0, p[:ipv4Len])))

	t := p[ipv4Len:]
	binary.BigEndian.PutUint16(t[0:], uint16(basePort+i))
	binary.BigEndian.PutUint16(t[2:], dstPort)
	binary.BigEndian.PutUint32(t[4:], 1) // sequence number
	binary.BigEndian.PutUint32(t[8:], 1) // acknowledgment number
	t[12] = 5 << 4                       // data offset: 20 bytes
	t[13] = 0x18                         // ACK, PSH
	binary.BigEndian.PutUint16(t[14:], 65535)
	for j := tcpLen; j < len(t); j++ {
		t[j] = byte(j)
	}
	// Pseudo-header: addresses, protocol, TCP length.
	s := sum(0, p[12:20])
	s += 6 + uint32(len(t))
	binary.BigEndian.PutUint16(t[16:], ^fold(sum(s, t)))
	return p
}

// sum adds b to s as 16-bit big-endian words (RFC 1071), unfolded.
func sum(s uint32, b []byte) uint32 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// advance adds n to the packet's sequence number and updates the TCP checksum for it
// (RFC 1624, eqn. 3), as a sender's next segment would differ.
func advance(p []byte, n uint32) {
	old := binary.BigEndian.Uint32(p[offSeq:])
	seq := old + n
	binary.BigEndian.PutUint32(p[offSeq:], seq)
	c := uint32(^binary.BigEndian.Uint16(p[offTCPSum:]))
	c += uint32(^uint16(old>>16)) + uint32(^uint16(old))
	c += seq>>16 + seq&0xffff
	binary.BigEndian.PutUint16(p[offTCPSum:], ^fold(c))
}

// streamOf returns the stream a received packet belongs to, or -1 for any other packet.
func streamOf(p []byte, streams int) int {
	if len(p) < ipv4Len+tcpLen || p[0] != 0x45 || p[9] != 6 {
		return -1
	}
	i := int(binary.BigEndian.Uint16(p[offSrcPort:])) - basePort
	if i < 0 || i >= streams {
		return -1
	}
	return i
}
