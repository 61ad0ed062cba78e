package masq

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	n, err := New(Config{
		Enabled:         true,
		LAN:             []netip.Prefix{netip.MustParsePrefix("192.168.86.7/24"), netip.MustParsePrefix("fd86::/64"), netip.MustParsePrefix("192.168.86.0/24")},
		TunnelInterface: "fobgw0",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `table inet fobgw {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "fobgw0" ip saddr 192.168.86.0/24 masquerade
		oifname "fobgw0" ip6 saddr fd86::/64 masquerade
	}
}
`
	if got := n.String(); got != want {
		t.Errorf("String:\n%s\nwant (host bits masked, duplicate dropped):\n%s", got, want)
	}

	off, err := New(Config{TunnelInterface: "fobgw0"})
	if err != nil {
		t.Fatal(err)
	}
	if got := off.String(); got != "masquerade off: no table inet fobgw\n" {
		t.Errorf("String with Masquerade off: %q", got)
	}
}

func TestConfigErrors(t *testing.T) {
	lan := []netip.Prefix{netip.MustParsePrefix("192.168.86.0/24")}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no interface", Config{Enabled: true, LAN: lan}, "tunnel interface"},
		{"long interface", Config{Enabled: true, LAN: lan, TunnelInterface: "a23456789012345x"}, "1 to 15 characters"},
		{"slash in name", Config{Enabled: true, LAN: lan, TunnelInterface: "fob/0"}, "tunnel interface"},
		{"no LAN", Config{Enabled: true, TunnelInterface: "fobgw0"}, "LAN = 192.168.86.0/24"},
		{"zero prefix", Config{Enabled: true, LAN: []netip.Prefix{{}}, TunnelInterface: "fobgw0"}, "not a prefix"},
		{"mapped prefix", Config{Enabled: true, LAN: []netip.Prefix{netip.MustParsePrefix("::ffff:192.168.86.0/120")}, TunnelInterface: "fobgw0"}, "dotted form"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New(%+v) = %v, want ErrConfig saying %q", tc.cfg, err, tc.want)
			}
		})
	}
	// Off needs nothing else.
	if _, err := New(Config{}); err != nil {
		t.Errorf("New(off) = %v", err)
	}
}
