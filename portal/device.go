package portal

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Device is one LAN device: an address inside the LAN, or a MAC address
// (EUI-48), which keeps naming the device when DHCP gives it another
// address. The zero Device is no device. Devices are comparable.
type Device struct {
	addr  netip.Addr
	mac   [6]byte
	isMAC bool
}

// DeviceAddr is the device at a.
func DeviceAddr(a netip.Addr) Device { return Device{addr: a.Unmap()} }

// DeviceMAC is the device with hardware address mac (6 bytes).
func DeviceMAC(mac [6]byte) Device { return Device{mac: mac, isMAC: true} }

// Addr is the device's address, when it is named by one.
func (d Device) Addr() (netip.Addr, bool) { return d.addr, d.addr.IsValid() }

// MAC is the device's hardware address, when it is named by one.
func (d Device) MAC() (net.HardwareAddr, bool) {
	if !d.isMAC {
		return nil, false
	}
	return net.HardwareAddr(d.mac[:]), true
}

// IsZero reports whether d names no device.
func (d Device) IsZero() bool { return !d.isMAC && !d.addr.IsValid() }

func (d Device) String() string {
	switch {
	case d.isMAC:
		return net.HardwareAddr(d.mac[:]).String()
	case d.addr.IsValid():
		return d.addr.String()
	default:
		return "none"
	}
}

// MarshalText gives the device as String does.
func (d Device) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads what MarshalText gives ("none" is no device), without
// ParseDevice's checks against the LAN: for status documents, not for input.
func (d *Device) UnmarshalText(b []byte) error {
	s := string(b)
	if s == "none" {
		*d = Device{}
		return nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		*d = DeviceAddr(a)
		return nil
	}
	if hw, err := net.ParseMAC(s); err == nil && len(hw) == 6 {
		*d = DeviceMAC([6]byte(hw))
		return nil
	}
	return fmt.Errorf("device %q: want an address, a MAC address or none", s)
}

const deviceExpected = "a LAN device: its address inside LAN (e.g. 192.168.86.50) or its MAC address (e.g. 02:11:22:33:44:55)"

// ParseDevice reads a device as the owner names it: an IPv4 or IPv6 address
// inside one of lan's prefixes (not the prefix's network address nor, for
// IPv4, its broadcast address), or a unicast MAC address of 6 bytes written
// with ':' or '-'. An error is a *ValueError.
func ParseDevice(s string, lan []netip.Prefix) (Device, error) {
	s = strings.TrimSpace(s)
	bad := func(format string, args ...any) (Device, error) {
		return Device{}, &ValueError{Problem: fmt.Sprintf(format, args...), Expected: deviceExpected}
	}
	if s == "" {
		return bad("no device")
	}
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		switch {
		case a.Zone() != "":
			return bad("%q has a zone", s)
		case !a.IsGlobalUnicast():
			return bad("%q is not a unicast address", s)
		}
		for _, p := range lan {
			if !p.Contains(a) {
				continue
			}
			p = p.Masked()
			if a == p.Addr() && p.Bits() < a.BitLen() {
				return bad("%q is the network address of LAN %v, not a device", s, p)
			}
			if a.Is4() && p.Bits() < 31 && a == lastAddr4(p) {
				return bad("%q is the broadcast address of LAN %v, not a device", s, p)
			}
			return DeviceAddr(a), nil
		}
		return bad("%q is not inside LAN (%s)", s, joinPrefixes(lan))
	}
	if len(s) == len("02:11:22:33:44:55") {
		hw, err := net.ParseMAC(s)
		if err == nil && len(hw) == 6 {
			switch {
			case hw[0]&1 != 0:
				return bad("%q is a multicast MAC address, not a device", s)
			case [6]byte(hw) == [6]byte{}:
				return bad("%q is the zero MAC address, not a device", s)
			}
			return DeviceMAC([6]byte(hw)), nil
		}
	}
	return bad("%q is neither an address nor a MAC address", s)
}

func lastAddr4(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func joinPrefixes(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "none configured"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
