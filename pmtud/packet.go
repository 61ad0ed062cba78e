package pmtud

import (
	"encoding/binary"
)

// The probe's way (see the package doc): the prober sends a small UDP
// datagram, the trigger, through the kernel into the TUN; the Device finds it
// among the packets it reads and rewrites it in place into an ICMP echo
// request of the probed size with DF set; the home router's kernel answers
// with an echo reply of the same size, which the Device takes out of the
// packets written to the TUN.
//
// Trigger, an IPv4 packet as the kernel sends it (no IP options):
//
//	IPv4 header (20) | UDP header (8) | magic (8) | key (8) | seq (4) | size (2) | 0 (2)
//
// Echo request and reply (RFC 792), of exactly size bytes:
//
//	IPv4 header (20, DF) | type, code, checksum, id, seq (8) | magic (8) | key (8) | seq (4) | size (2) | 0 ...
//
// key is a random secret of the Device: a LAN host cannot make the Device
// rewrite its packets, and no one but the home router (which echoes the
// payload) can fake a reply.

const (
	ipv4HeaderLen = 20
	udpHeaderLen  = 8
	icmpHeaderLen = 8

	// marker: magic, key, seq, size, 2 reserved bytes.
	markerLen = 8 + 8 + 4 + 2 + 2

	// triggerLen is the IPv4 length of a trigger datagram.
	triggerLen = ipv4HeaderLen + udpHeaderLen + markerLen
	// MinProbe is the smallest probe: an echo request with the marker.
	MinProbe = ipv4HeaderLen + icmpHeaderLen + markerLen
	// MaxProbe is the largest probe: the IPv4 total length field.
	MaxProbe = 65535

	protoICMP = 1
	protoUDP  = 17

	icmpEchoReply   = 0
	icmpEchoRequest = 8

	flagDF = 0x4000
)

// magic opens every marker.
var magic = [8]byte{'f', 'o', 'b', 'p', 'm', 't', 'u', 'd'}

// marker is what a trigger and a probe carry.
type marker struct {
	key  uint64
	seq  uint32
	size uint16
}

func (m marker) put(b []byte) {
	copy(b, magic[:])
	binary.BigEndian.PutUint64(b[8:], m.key)
	binary.BigEndian.PutUint32(b[16:], m.seq)
	binary.BigEndian.PutUint16(b[20:], m.size)
	b[22], b[23] = 0, 0
}

// readMarker reads the marker at b (len(b) >= markerLen), if it has the magic
// and key.
func readMarker(b []byte, key uint64) (marker, bool) {
	if [8]byte(b[:8]) != magic || binary.BigEndian.Uint64(b[8:]) != key {
		return marker{}, false
	}
	return marker{key: key, seq: binary.BigEndian.Uint32(b[16:]), size: binary.BigEndian.Uint16(b[20:])}, true
}

// triggerPayload is the UDP payload of a trigger asking for a probe of size
// bytes.
func triggerPayload(key uint64, seq uint32, size int) []byte {
	b := make([]byte, markerLen)
	marker{key: key, seq: seq, size: uint16(size)}.put(b)
	return b
}

// parseTrigger reports whether pkt is a trigger of key and returns its
// marker. pkt is the whole IPv4 packet.
func parseTrigger(pkt []byte, key uint64) (marker, bool) {
	if len(pkt) != triggerLen || pkt[0] != 0x45 || pkt[9] != protoUDP ||
		int(binary.BigEndian.Uint16(pkt[2:])) != triggerLen ||
		binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 { // a fragment is no trigger
		return marker{}, false
	}
	m, ok := readMarker(pkt[ipv4HeaderLen+udpHeaderLen:], key)
	if !ok || m.size < MinProbe {
		return marker{}, false
	}
	return m, true
}

// writeEcho turns the trigger in buf[:triggerLen] into an ICMP echo request
// of m.size bytes in place: the addresses, TOS, identification and TTL stay,
// DF is set. len(buf) >= m.size.
func writeEcho(buf []byte, m marker, icmpID uint16) {
	n := int(m.size)
	binary.BigEndian.PutUint16(buf[2:], uint16(n))
	binary.BigEndian.PutUint16(buf[6:], flagDF)
	buf[9] = protoICMP
	buf[10], buf[11] = 0, 0
	binary.BigEndian.PutUint16(buf[10:], checksum(buf[:ipv4HeaderLen]))
	icmp := buf[ipv4HeaderLen:n]
	icmp[0], icmp[1] = icmpEchoRequest, 0
	icmp[2], icmp[3] = 0, 0
	binary.BigEndian.PutUint16(icmp[4:], icmpID)
	binary.BigEndian.PutUint16(icmp[6:], uint16(m.seq))
	m.put(icmp[icmpHeaderLen:])
	clear(icmp[icmpHeaderLen+markerLen:])
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
}

// parseReply reports whether pkt, an IPv4 packet written to the TUN, is the
// echo reply to one of the Device's probes (identifier icmpID, marker of
// key), whole and unfragmented, and returns its marker. The size that
// counts is len(pkt), the size that arrived.
func parseReply(pkt []byte, key uint64, icmpID uint16) (marker, bool) {
	if len(pkt) < MinProbe || pkt[0] != 0x45 || pkt[9] != protoICMP ||
		int(binary.BigEndian.Uint16(pkt[2:])) != len(pkt) ||
		binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 { // MF or an offset: a fragment
		return marker{}, false
	}
	icmp := pkt[ipv4HeaderLen:]
	if icmp[0] != icmpEchoReply || icmp[1] != 0 || binary.BigEndian.Uint16(icmp[4:]) != icmpID {
		return marker{}, false
	}
	m, ok := readMarker(icmp[icmpHeaderLen:], key)
	if !ok || uint16(m.seq) != binary.BigEndian.Uint16(icmp[6:]) {
		return marker{}, false
	}
	return m, true
}

// checksum is the Internet checksum (RFC 1071) of b.
func checksum(b []byte) uint16 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
