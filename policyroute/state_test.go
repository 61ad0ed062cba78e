package policyroute

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func pfx(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// storyConfig is the FOB of the story.
func storyConfig() Config {
	return Config{
		LAN:             pfx("192.168.86.0/24"),
		LANInterface:    "br0",
		Table:           100,
		TunnelInterface: "fobgw0",
		HomeNetworks:    pfx("192.168.88.0/24"),
		KillSwitch:      true,
	}
}

func TestDesiredString(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*Config)
		want []string
	}{
		{
			name: "story",
			cfg:  func(*Config) {},
			want: []string{
				"ip rule add from 192.168.86.0/24 iif br0 lookup 100 priority 5200 protocol 70",
				"ip rule add from all iif br0 lookup 100 priority 5201 protocol 70",
				"ip route add default dev fobgw0 table 100 metric 100 proto 70",
				"ip route add unreachable default table 100 metric 4000 proto 70",
				"ip route add 192.168.88.0/24 dev fobgw0 table main metric 100 proto 70",
				"ip route add unreachable 192.168.88.0/24 table main metric 4000 proto 70",
				"sysctl -w net.ipv4.ip_forward=1",
				"sysctl -w net.ipv4.conf.fobgw0.rp_filter=2",
			},
		},
		{
			name: "no kill switch, no home, host bits masked",
			cfg: func(c *Config) {
				c.KillSwitch = false
				c.HomeNetworks = nil
				c.LAN = pfx("192.168.86.1/24")
			},
			want: []string{
				"ip rule add from 192.168.86.0/24 iif br0 lookup 100 priority 5200 protocol 70",
				"ip rule add from all iif br0 lookup 100 priority 5201 protocol 70",
				"ip route add default dev fobgw0 table 100 metric 100 proto 70",
				"sysctl -w net.ipv4.ip_forward=1",
				"sysctl -w net.ipv4.conf.fobgw0.rp_filter=2",
			},
		},
		{
			name: "v6 LAN listed first is sorted after v4",
			cfg: func(c *Config) {
				c.LAN = pfx("fd86::/64", "192.168.86.0/24")
				c.HomeNetworks = nil
			},
			want: []string{
				"ip rule add from 192.168.86.0/24 iif br0 lookup 100 priority 5200 protocol 70",
				"ip -6 rule add from fd86::/64 iif br0 lookup 100 priority 5200 protocol 70",
				"ip rule add from all iif br0 lookup 100 priority 5201 protocol 70",
				"ip -6 rule add from all iif br0 lookup 100 priority 5201 protocol 70",
				"ip route add default dev fobgw0 table 100 metric 100 proto 70",
				"ip route add unreachable default table 100 metric 4000 proto 70",
				"ip -6 route add default dev fobgw0 table 100 metric 100 proto 70",
				"ip -6 route add unreachable default table 100 metric 4000 proto 70",
				"sysctl -w net.ipv4.ip_forward=1",
				"sysctl -w net.ipv6.conf.all.forwarding=1",
				"sysctl -w net.ipv4.conf.fobgw0.rp_filter=2",
			},
		},
		{
			name: "local breakout: marked LAN packets to main, ahead of the LAN's table",
			cfg: func(c *Config) {
				c.LAN = pfx("192.168.86.0/24", "fd86::/64")
				c.HomeNetworks = nil
				c.BypassMark = 0x1000000
			},
			want: []string{
				"ip rule add from 192.168.86.0/24 iif br0 fwmark 0x1000000/0x1000000 lookup main priority 5199 protocol 70",
				"ip rule add from 192.168.86.0/24 iif br0 lookup 100 priority 5200 protocol 70",
				"ip -6 rule add from fd86::/64 iif br0 fwmark 0x1000000/0x1000000 lookup main priority 5199 protocol 70",
				"ip -6 rule add from fd86::/64 iif br0 lookup 100 priority 5200 protocol 70",
				"ip rule add from all iif br0 lookup 100 priority 5201 protocol 70",
				"ip -6 rule add from all iif br0 lookup 100 priority 5201 protocol 70",
				"ip route add default dev fobgw0 table 100 metric 100 proto 70",
				"ip route add unreachable default table 100 metric 4000 proto 70",
				"ip -6 route add default dev fobgw0 table 100 metric 100 proto 70",
				"ip -6 route add unreachable default table 100 metric 4000 proto 70",
				"sysctl -w net.ipv4.ip_forward=1",
				"sysctl -w net.ipv6.conf.all.forwarding=1",
				"sysctl -w net.ipv4.conf.fobgw0.rp_filter=2",
			},
		},
		{
			name: "only v6 LAN, dotted tunnel name, v6 home",
			cfg: func(c *Config) {
				c.LAN = pfx("fd86::/64")
				c.TunnelInterface = "wg.7"
				c.HomeNetworks = pfx("fd88::/64")
				c.Table = 51820
			},
			want: []string{
				"ip -6 rule add from fd86::/64 iif br0 lookup 51820 priority 5200 protocol 70",
				"ip rule add from all iif br0 lookup 51820 priority 5201 protocol 70",
				"ip -6 rule add from all iif br0 lookup 51820 priority 5201 protocol 70",
				"ip route add unreachable default table 51820 metric 4000 proto 70",
				"ip -6 route add default dev wg.7 table 51820 metric 100 proto 70",
				"ip -6 route add unreachable default table 51820 metric 4000 proto 70",
				"ip -6 route add fd88::/64 dev wg.7 table main metric 100 proto 70",
				"ip -6 route add unreachable fd88::/64 table main metric 4000 proto 70",
				"sysctl -w net.ipv4.ip_forward=1",
				"sysctl -w net.ipv6.conf.all.forwarding=1",
				"sysctl -w net/ipv4/conf/wg.7/rp_filter=2",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := storyConfig()
			tt.cfg(&cfg)
			st, err := Desired(cfg)
			if err != nil {
				t.Fatalf("Desired: %v", err)
			}
			got := strings.Split(strings.TrimSuffix(st.String(), "\n"), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("State.String():\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestDesiredErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*Config)
		want []string // substrings of the message
	}{
		{"no LAN", func(c *Config) { c.LAN = nil }, []string{"LAN is empty", "LAN = 192.168.86.0/24"}},
		{"invalid LAN", func(c *Config) { c.LAN = []netip.Prefix{{}} }, []string{"LAN holds an invalid prefix"}},
		{"no LAN interface", func(c *Config) { c.LANInterface = "" }, []string{"LANInterface is empty"}},
		{"long tunnel name", func(c *Config) { c.TunnelInterface = "a234567890123456" }, []string{"TunnelInterface", "15 bytes"}},
		{"slash in name", func(c *Config) { c.LANInterface = "br/0" }, []string{"LANInterface \"br/0\" is not a valid"}},
		{"same interface", func(c *Config) { c.TunnelInterface = "br0" }, []string{"both \"br0\""}},
		{"table main", func(c *Config) { c.Table = 254 }, []string{"Table 254 is reserved", "such as 100"}},
		{"table local", func(c *Config) { c.Table = 255 }, []string{"Table 255 is reserved"}},
		{"table zero", func(c *Config) { c.Table = 0 }, []string{"Table 0 is reserved"}},
		{"table negative", func(c *Config) { c.Table = -3 }, []string{"Table -3 is out of range"}},
		{"home default", func(c *Config) { c.HomeNetworks = pfx("0.0.0.0/0") }, []string{"HomeNetworks 0.0.0.0/0 is a default route"}},
		{"home overlaps LAN", func(c *Config) { c.HomeNetworks = pfx("192.168.0.0/16") }, []string{"overlaps LAN 192.168.86.0/24"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := storyConfig()
			tt.cfg(&cfg)
			_, err := Desired(cfg)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("Desired: err = %v, want ErrConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if _, err := New(nil, cfg); !errors.Is(err, ErrConfig) {
				t.Errorf("New: err = %v, want ErrConfig", err)
			}
		})
	}
}

func TestLookupTable(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	main := write("rt_tables", "#\n255\tlocal\n254\tmain\n# 7 commented\n100  fob # trailing comment\n0x20 hexa\n")
	write("rt_tables.d/b.conf", "200 vpn\n")
	write("rt_tables.d/a.conf", "201 other\n")
	write("rt_tables.d/ignored.txt", "300 ignored\n")
	files := []string{main, filepath.Join(dir, "rt_tables.d"), filepath.Join(dir, "missing")}

	tests := []struct {
		in      string
		want    int
		wantErr []string
	}{
		{in: "100", want: 100},
		{in: " 51820 ", want: 51820},
		{in: "fob", want: 100},
		{in: "hexa", want: 32},
		{in: "main", want: 254},
		{in: "vpn", want: 200},
		{in: "other", want: 201},
		{in: "commented", wantErr: []string{`unknown routing table "commented"`, main, filepath.Join(dir, "rt_tables.d", "a.conf"), "not readable: " + filepath.Join(dir, "missing"), "Table = 100"}},
		{in: "ignored", wantErr: []string{"ignored"}},
		{in: "", wantErr: []string{"Table is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := lookupTable(tt.in, files)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("lookupTable(%q) = %d, want error", tt.in, got)
				}
				if tt.in != "" && !errors.Is(err, ErrUnknownTable) {
					t.Errorf("err = %v, want ErrUnknownTable", err)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("lookupTable(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestLookupTableSystemFiles(t *testing.T) {
	// Every iproute2 install names the main table.
	got, err := LookupTable("main")
	if err != nil && !errors.Is(err, ErrUnknownTable) {
		t.Fatal(err)
	}
	if err == nil && got != 254 {
		t.Errorf(`LookupTable("main") = %d, want 254`, got)
	}
	if _, err := LookupTable("no-such-table-fobgw"); !errors.Is(err, ErrUnknownTable) || !strings.Contains(err.Error(), "rt_tables") {
		t.Errorf("unknown name: err = %v, want ErrUnknownTable naming rt_tables", err)
	}
}
