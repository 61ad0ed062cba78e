package masq

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"github.com/google/nftables"
)

// Device is a LAN device of the breakout: by MAC on the LAN interface (it
// keeps its bypass under a new DHCP lease), or by address inside the LAN.
// Exactly one of the two is set.
type Device struct {
	MAC  net.HardwareAddr
	Addr netip.Addr
}

func (d Device) String() string {
	if d.MAC != nil {
		return d.MAC.String()
	}
	return d.Addr.String()
}

// DeviceCount is what the kernel counted for one bypassed device: packets
// from it (and, for a device by address, to it), while it was bypassed.
type DeviceCount struct {
	Device
	Packets, Bytes uint64
	Expires        time.Duration // left of a window (AllowDevice); 0 for a Bypass device
}

// Counters is the breakout as the kernel holds it now, for status.
type Counters struct {
	Devices        []DeviceCount // configured Bypass devices and open windows, in set order
	Local4, Local6 int           // addresses in the local sets
}

// AllowDevice opens a window of d (a captive portal's login, say): for the
// next `for` it is bypassed like a Bypass device. A second call for the
// same device sets the window's end anew (Linux 6.10 and later; before,
// the first end stays). The window is the set element's timeout, so it
// ends on time even if the process dies; Apply (and so Repair after drift)
// carries it over with the time it has left.
func (n *NAT) AllowDevice(d Device, dur time.Duration) error {
	if dur <= 0 {
		return fmt.Errorf("%w: a device window needs a positive duration, not %v", ErrConfig, dur)
	}
	return n.deviceOp(d, dur, true)
}

// RevokeDevice closes the window of d before its end: its new flows go
// home, those it began in the window finish direct. A device without a
// window is not an error; a configured Bypass device cannot be revoked.
func (n *NAT) RevokeDevice(d Device) error {
	if n.configured(d) {
		return fmt.Errorf("%w: %s is a Bypass device of the configuration, not a window", ErrConfig, d)
	}
	return n.deviceOp(d, 0, false)
}

func (n *NAT) configured(d Device) bool {
	b := n.cfg.Breakout
	if d.MAC != nil {
		return slices.ContainsFunc(b.MACs, func(m net.HardwareAddr) bool { return string(m) == string(d.MAC) })
	}
	return slices.Contains(b.Addrs, d.Addr.Unmap())
}

func (n *NAT) deviceOp(d Device, dur time.Duration, add bool) error {
	if !n.cfg.Breakout.Enabled {
		return fmt.Errorf("%w: device windows need the local breakout (Breakout.Enabled)", ErrConfig)
	}
	set, key, err := n.deviceKey(d)
	if err != nil {
		return err
	}
	c, err := nftables.New(n.opts...)
	if err != nil {
		return opErr("open nftables", err)
	}
	s := &nftables.Set{Table: &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}, Name: set, HasTimeout: true}
	el := []nftables.SetElement{{Key: key, Timeout: dur}}
	op := "open a window for " + d.String()
	if add {
		err = c.SetAddElements(s, el)
	} else {
		op = "close the window of " + d.String()
		err = c.SetDeleteElements(s, el)
	}
	if err == nil {
		err = c.Flush()
	}
	if !add && errors.Is(err, syscall.ENOENT) {
		return nil
	}
	if err != nil {
		return opErr(op, err)
	}
	return nil
}

func (n *NAT) deviceKey(d Device) (set string, key []byte, err error) {
	switch {
	case d.MAC != nil && d.Addr.IsValid():
		return "", nil, fmt.Errorf("%w: device %s/%s: give a MAC or an address, not both", ErrConfig, d.MAC, d.Addr)
	case d.MAC != nil:
		if len(d.MAC) != 6 || d.MAC[0]&1 != 0 {
			return "", nil, fmt.Errorf("%w: device MAC %s: want a 6-byte unicast address", ErrConfig, d.MAC)
		}
		return SetBypassMAC, slices.Clone(d.MAC), nil
	}
	a := d.Addr.Unmap()
	if !a.IsValid() || !slices.ContainsFunc(n.cfg.LAN, func(p netip.Prefix) bool { return p.Contains(a) }) {
		return "", nil, fmt.Errorf("%w: device address %v is not inside LAN", ErrConfig, d.Addr)
	}
	if a.Is4() {
		return SetBypass4, a.AsSlice(), nil
	}
	return SetBypass6, a.AsSlice(), nil
}

// Counters reads the per-device counters and the local sets' sizes. It
// costs a walk of the local sets: call it for status, not per packet.
func (n *NAT) Counters() (Counters, error) {
	var out Counters
	if !n.cfg.Breakout.Enabled {
		return out, nil
	}
	c, err := nftables.New(n.opts...)
	if err != nil {
		return out, opErr("open nftables", err)
	}
	t := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	for _, set := range []string{SetBypassMAC, SetBypass4, SetBypass6, SetLocal4, SetLocal6} {
		s, err := c.GetSetByName(t, set)
		if err != nil {
			return out, opErr("read set "+set, err)
		}
		els, err := c.GetSetElements(s)
		if err != nil {
			return out, opErr("read set "+set, err)
		}
		switch set {
		case SetLocal4:
			out.Local4 = len(els)
		case SetLocal6:
			out.Local6 = len(els)
		default:
			for _, e := range els {
				dc := DeviceCount{Expires: e.Expires}
				if set == SetBypassMAC {
					dc.MAC = net.HardwareAddr(slices.Clone(e.Key[:6]))
				} else {
					dc.Addr, _ = netip.AddrFromSlice(e.Key)
				}
				if e.Counter != nil {
					dc.Packets, dc.Bytes = e.Counter.Packets, e.Counter.Bytes
				}
				out.Devices = append(out.Devices, dc)
			}
		}
	}
	return out, nil
}
