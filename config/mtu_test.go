package config

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// TestMaxMTU: the limit the configuration enforces is what a 2 KiB packet buffer holds around
// a transport message's 16-byte header and 16-byte tag (patches/wireguard/0002).
func TestMaxMTU(t *testing.T) {
	if MaxMTU != 2048-16-16 {
		t.Errorf("MaxMTU = %d, want 2016: did patches/wireguard change the packet buffer size?", MaxMTU)
	}
}

// TestMTUCeilingRule: MTU = auto is a ceiling of 1420, a number its own
// ceiling, and the ceiling bounds ClampMSS.
func TestMTUCeilingRule(t *testing.T) {
	tests := []struct {
		name    string
		lines   []string // replacing the MTU and ClampMSS lines
		ceiling int
		errKey  string // "" when valid
		errText string
	}{
		{"auto fits auto clamp", []string{"MTU = auto", "ClampMSS = auto"}, 1420, "", ""},
		{"absent is auto", []string{"# MTU = 1420", "ClampMSS = auto"}, 1420, "", ""},
		{"auto holds MSS 1380", []string{"MTU = auto", "ClampMSS = 1380"}, 1420, "", ""},
		{"auto refuses MSS 1381", []string{"MTU = auto", "ClampMSS = 1381"}, 0, "ClampMSS", "536 to 1380 (MTU-40)"},
		{"a larger ceiling holds MSS 1460", []string{"MTU = 1500", "ClampMSS = 1460"}, 1500, "", ""},
		{"a smaller ceiling refuses MSS 1400", []string{"MTU = 1400", "ClampMSS = 1400"}, 0, "ClampMSS", "does not fit the tunnel MTU 1400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := replaceLine(t, withLine(t, "MTU", tt.lines[0]), "ClampMSS", tt.lines[1])
			c, err := ParseConfig("test.conf", []byte(text))
			if tt.errKey != "" {
				var ce *ConfigError
				if !errors.As(err, &ce) || ce.Key != tt.errKey || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("err %v; want a *ConfigError for %s saying %q", err, tt.errKey, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.MTUCeiling(); got != tt.ceiling {
				t.Errorf("ceiling %d, want %d", got, tt.ceiling)
			}
		})
	}
}

// TestMTUValidate: a Config built by hand holds 0 (auto) or a number from
// 576 to MaxMTU.
func TestMTUValidate(t *testing.T) {
	for _, tt := range []struct {
		mtu int
		ok  bool
	}{{0, true}, {576, true}, {MaxMTU, true}, {575, false}, {MaxMTU + 1, false}, {-1, false}} {
		c := mustParse(t, baseConfig)
		c.MTU = tt.mtu
		if err := c.Validate(); (err == nil) != tt.ok {
			t.Errorf("MTU %d: Validate %v, want ok %v", tt.mtu, err, tt.ok)
		}
	}
}

// TestPathMTUOff: discovery runs only with an IPv4 tunnel address, an
// IPv4 probe target and a ceiling above the floor; check says why not.
func TestPathMTUOff(t *testing.T) {
	tests := []struct {
		name, key, line string
		off             string // part of the reason; "" when on
	}{
		{"story", "MTU", "MTU = 1420", ""},
		{"ipv6 tunnel only", "Address", "Address = fd00:1::2/64", "no IPv4 address"},
		{"dual stack", "Address", "Address = 10.1.200.2/24, fd00:1::2/64", ""},
		{"at the floor", "MTU", "MTU = 1280", "at or below the floor 1280"},
		{"ipv6 probe", "Probe", "", "not IPv4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c *Config
			if tt.key == "Probe" {
				c = mustParse(t, withLine(t, "Address", "Address = 10.1.200.2/24, fd00:1::2/64"))
				c.Probe = netip.MustParseAddrPort("[fd00:1::1]:53")
			} else {
				c = mustParse(t, withLine(t, tt.key, tt.line))
			}
			got := c.PMTUOff()
			if (got == "") != (tt.off == "") || !strings.Contains(got, tt.off) {
				t.Errorf("PMTUOff = %q, want %q", got, tt.off)
			}
			if tt.off != "" && !strings.Contains(c.MTUText(), "path MTU discovery off: ") {
				t.Errorf("MTUText %q does not say discovery is off", c.MTUText())
			}
		})
	}
}
