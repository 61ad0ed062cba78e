package portal

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

var testLAN = []netip.Prefix{netip.MustParsePrefix("192.168.86.0/24"), netip.MustParsePrefix("fd00:86::/64")}

func TestParseDevice(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.168.86.50", "192.168.86.50"},
		{" 192.168.86.254 ", "192.168.86.254"},
		{"::ffff:192.168.86.7", "192.168.86.7"},
		{"fd00:86::1234", "fd00:86::1234"},
		{"02:11:22:33:44:55", "02:11:22:33:44:55"},
		{"02-11-22-33-44-5A", "02:11:22:33:44:5a"},
		{"02:AB:cd:33:44:55", "02:ab:cd:33:44:55"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			d, err := ParseDevice(tc.in, testLAN)
			if err != nil {
				t.Fatalf("ParseDevice(%q): %v", tc.in, err)
			}
			if d.String() != tc.want || d.IsZero() {
				t.Fatalf("ParseDevice(%q) = %v, want %v", tc.in, d, tc.want)
			}
			again, err := ParseDevice(d.String(), testLAN)
			if err != nil || again != d {
				t.Fatalf("ParseDevice(%q) again = %v, %v", d.String(), again, err)
			}
			_, isAddr := d.Addr()
			_, isMAC := d.MAC()
			if isAddr == isMAC {
				t.Fatalf("%v: address %v, MAC %v; want exactly one", d, isAddr, isMAC)
			}
		})
	}
}

func TestParseDeviceErrors(t *testing.T) {
	for _, tc := range []struct{ in, problem string }{
		{"", "no device"},
		{"192.168.87.5", "not inside LAN (192.168.86.0/24, fd00:86::/64)"},
		{"10.0.0.1", "not inside LAN"},
		{"192.168.86.0", "network address of LAN 192.168.86.0/24"},
		{"192.168.86.255", "broadcast address of LAN 192.168.86.0/24"},
		{"fd00:86::", "network address of LAN fd00:86::/64"},
		{"fe80::1%eth0", "has a zone"},
		{"127.0.0.1", "not a unicast address"},
		{"224.0.0.1", "not a unicast address"},
		{"01:00:5e:00:00:01", "multicast MAC"},
		{"00:00:00:00:00:00", "zero MAC"},
		{"02:11:22:33:44", "neither an address nor a MAC"},
		{"00-00-5e-00-53-01-02-03", "neither an address nor a MAC"},
		{"laptop", "neither an address nor a MAC"},
		{"192.168.86.0/24", "neither an address nor a MAC"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			d, err := ParseDevice(tc.in, testLAN)
			var ve *ValueError
			if !errors.As(err, &ve) {
				t.Fatalf("ParseDevice(%q) = %v, %v; want a *ValueError", tc.in, d, err)
			}
			if !strings.Contains(ve.Problem, tc.problem) || !strings.Contains(ve.Expected, "MAC") {
				t.Errorf("error %q, want it to say %q and what is expected", err, tc.problem)
			}
		})
	}
}

func TestDeviceZero(t *testing.T) {
	var d Device
	if !d.IsZero() || d.String() != "none" {
		t.Fatalf("zero Device: IsZero %v, String %q", d.IsZero(), d)
	}
	if DeviceAddr(netip.MustParseAddr("::ffff:192.168.86.7")) != DeviceAddr(netip.MustParseAddr("192.168.86.7")) {
		t.Fatal("a 4in6 address is another device than its IPv4 address")
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// FuzzParseDevice: no panic; a device parsed is inside LAN or a unicast
// MAC, and its String parses (and unmarshals) to the same device.
func FuzzParseDevice(f *testing.F) {
	for _, s := range []string{"192.168.86.50", "02:11:22:33:44:55", "fd00:86::1", "192.168.86.255", "01-00-5e-00-00-01", "::ffff:192.168.86.1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDevice(s, testLAN)
		if err != nil {
			if !d.IsZero() {
				t.Fatalf("%q: error %v with device %v", s, err, d)
			}
			return
		}
		if a, ok := d.Addr(); ok {
			if !testLAN[0].Contains(a) && !testLAN[1].Contains(a) {
				t.Fatalf("%q: %v outside LAN", s, a)
			}
		} else if mac, ok := d.MAC(); !ok || mac[0]&1 != 0 {
			t.Fatalf("%q: %v is neither an address nor a unicast MAC", s, d)
		}
		again, err := ParseDevice(d.String(), testLAN)
		if err != nil || again != d {
			t.Fatalf("%q -> %q -> %v, %v", s, d.String(), again, err)
		}
		var back Device
		if err := back.UnmarshalText([]byte(d.String())); err != nil || back != d {
			t.Fatalf("%q: UnmarshalText(%q) = %v, %v", s, d.String(), back, err)
		}
	})
}
