package netaddr

import (
	"net"
	"net/netip"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, s := range []string{"10.1.200.2/24", "192.168.86.0/24", "0.0.0.0/0", "2001:db8::1/64", "::/0", "10.0.0.1/32"} {
		p := netip.MustParsePrefix(s)
		n := IPNet(p)
		if got := n.String(); got != s {
			t.Errorf("IPNet(%s) = %s", s, got)
		}
		if got := Prefix(n); got != p {
			t.Errorf("Prefix(IPNet(%s)) = %s", s, got)
		}
	}
}

func TestPrefixMapped(t *testing.T) {
	n := &net.IPNet{IP: net.ParseIP("192.168.86.0"), Mask: net.CIDRMask(120, 128)}
	if got, want := Prefix(n), netip.MustParsePrefix("192.168.86.0/24"); got != want {
		t.Errorf("Prefix(%v) = %v, want %v", n, got, want)
	}
	if got := Prefix(&net.IPNet{IP: net.IP{1, 2, 3}, Mask: net.CIDRMask(8, 32)}); got.IsValid() {
		t.Errorf("Prefix of a 3-byte address = %v, want the zero Prefix", got)
	}
}
