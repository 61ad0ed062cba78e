package gateway

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fobgw/fobgw/config"
	"github.com/fobgw/fobgw/portal"
)

// storyConfig returns the story's config with a fresh key file in a temp dir.
func storyConfig(tb testing.TB) (*config.Config, config.Key) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "private.key")
	k, _, err := config.LoadPrivateKey(path, true)
	if err != nil {
		tb.Fatal(err)
	}
	c := mustParse(tb, withLine(tb, "PrivateKeyFile", "PrivateKeyFile = "+path))
	return c, k
}

func TestHomeConfig(t *testing.T) {
	c, k := storyConfig(t)
	pub := k.PublicKey().String()
	tests := []struct {
		format string
		want   []string
	}{
		{FormatRouterOS, []string{
			// The story's BEG already has this peer (10.1.200.2/32 only):
			// replace it rather than add a second one.
			"/interface wireguard peers\nremove [find public-key=\"" + pub + "\"]\nadd allowed-address=",
			"#   /ip address add address=10.1.200.1/24 interface=wireguard1\n",
			"add allowed-address=10.1.200.2/32,192.168.86.0/24 ",
			`public-key="` + pub + `"`,
			"/ip route add dst-address=192.168.86.0/24 gateway=wireguard1",
			"listen-port=13231",
			"masquerade",
			"Permit all origins",
		}},
		{FormatWGQuick, []string{
			"[Interface]\n",
			"ListenPort = 13231\n",
			"[Peer]\n",
			"PublicKey = " + pub + "\n",
			"AllowedIPs = 10.1.200.2/32, 192.168.86.0/24\n",
			"net.ipv4.ip_forward=1",
			"-s 192.168.86.0/24 -o eth0 -j MASQUERADE",
			"masquerade",
			"Permit all origins",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			var b bytes.Buffer
			if err := HomeConfig(c, tt.format, &b); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, b.String())
				}
			}
			if strings.Contains(b.String(), k.String()) {
				t.Errorf("output leaks the FOB's private key")
			}
			// Every line that is not a comment is a command or a key: the
			// hints must stay in comments.
			for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
				if strings.Contains(l, "ip_forward") && !strings.HasPrefix(l, "#") {
					t.Errorf("hint outside a comment: %q", l)
				}
			}
		})
	}
}

// TestHomeConfigPorts: with an Endpoint list the home side is told every
// port to open, and how to bring the others to its one listen port.
func TestHomeConfigPorts(t *testing.T) {
	c, _ := storyConfig(t)
	list, err := config.ParseEndpoints("home.example.net:13231, home.example.net:443, backup.example.org:51820, 198.51.100.2:443")
	if err != nil {
		t.Fatal(err)
	}
	c.Endpoint, c.Endpoints = list[0], list
	for format, want := range map[string][]string{
		FormatRouterOS: {"UDP ports 13231, 443, 51820 (the FOB's Endpoint list)", "listen-port=13231",
			"dst-port=443 protocol=udp to-ports=13231", "dst-port=51820 protocol=udp to-ports=13231",
			"action=accept chain=input comment=\"Wireguard for FOB fobgw0\" dst-port=443"},
		FormatWGQuick: {"UDP ports 13231, 443, 51820 (the FOB's Endpoint list)", "ListenPort = 13231\n", "--dport 443 -j REDIRECT --to-ports 13231"},
	} {
		var b bytes.Buffer
		if err := HomeConfig(c, format, &b); err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s output lacks %q:\n%s", format, w, b.String())
			}
		}
		if strings.Count(b.String(), "dst-port=443 protocol=udp to-ports") > 1 {
			t.Errorf("%s: port 443 redirected twice:\n%s", format, b.String())
		}
	}
}

// TestCheckEndpointListAndMasquerade: check prints the Endpoint list and
// the masquerade table it would install.
func TestCheckEndpointListAndMasquerade(t *testing.T) {
	c, _ := storyConfig(t)
	list, _ := config.ParseEndpoints("home.example.net:13231, home.example.net:443")
	c.Endpoint, c.Endpoints, c.Masquerade = list[0], list, true
	var b bytes.Buffer
	err := Check(c, Options{RunDir: t.TempDir()}, &b)
	var ce *config.ConfigError
	if err != nil && (!errors.As(err, &ce) || ce.Key != "LANInterface") {
		t.Fatalf("Check: %v", err)
	}
	for _, w := range []string{
		"endpoint list home.example.net:13231, home.example.net:443 (tried in order",
		"# masquerade (nftables)\ntable inet fobgw {",
		`oifname "fobgw0" ip saddr 192.168.86.0/24 masquerade`,
		"lan path probe 192.168.88.1:53 from 192.168.86.1 through fobgw0",
	} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("check output lacks %q:\n%s", w, b.String())
		}
	}
	c.Masquerade = false
	b.Reset()
	Check(c, Options{RunDir: t.TempDir()}, &b)
	if !strings.Contains(b.String(), "# captive portal\ncheck http://connectivitycheck.gstatic.com/generate_204 204") || !strings.Contains(b.String(), "table inet fobgw {") {
		t.Errorf("check output with Masquerade off and PortalCheck on (the table holds the windows):\n%s", b.String())
	}
	c.PortalCheck = portal.Check{}
	b.Reset()
	Check(c, Options{RunDir: t.TempDir()}, &b)
	if !strings.Contains(b.String(), "masquerade off: no table inet fobgw") || !strings.Contains(b.String(), "PortalCheck = off") {
		t.Errorf("check output with Masquerade and PortalCheck off:\n%s", b.String())
	}
}

func TestHomeConfigErrors(t *testing.T) {
	c, _ := storyConfig(t)
	if err := HomeConfig(c, "mikrotik", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "routeros") {
		t.Errorf("unknown format: %v", err)
	}
	c.PrivateKeyFile = filepath.Join(t.TempDir(), "missing.key")
	err := HomeConfig(c, FormatRouterOS, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "fobgw run") || !strings.Contains(err.Error(), "fobgw genkey") {
		t.Errorf("missing key file: %v", err)
	}
	if _, err := os.Stat(c.PrivateKeyFile); err == nil {
		t.Errorf("home-config created the key file")
	}
}

// TestCheckResolvConf: without Resolver, check names the resolv.conf and
// what it lists now, and an empty one is no error (DHCP may fill it later).
func TestCheckResolvConf(t *testing.T) {
	c, _ := storyConfig(t)
	c.Resolver = nil
	c.ResolvConf = filepath.Join(t.TempDir(), "resolv.conf")
	for _, tt := range []struct{ content, want string }{
		{"nameserver 192.168.2.1\nnameserver 192.168.86.1\n", "Resolver: nameservers of " + c.ResolvConf + " (now: 192.168.2.1:53)\n"},
		{"search lan\n", "Resolver: nameservers of " + c.ResolvConf + " (now: none usable yet; run retries with back-off"},
	} {
		os.WriteFile(c.ResolvConf, []byte(tt.content), 0o644)
		var b bytes.Buffer
		err := Check(c, Options{RunDir: t.TempDir()}, &b)
		var ce *config.ConfigError
		if err != nil && (!errors.As(err, &ce) || ce.Key != "LANInterface") {
			t.Fatalf("Check: %v", err)
		}
		if !strings.Contains(b.String(), tt.want) {
			t.Errorf("resolv.conf %q: check output lacks %q:\n%s", tt.content, tt.want, b.String())
		}
	}
}

func TestCheckPrintsStateAndChangesNothing(t *testing.T) {
	c, _ := storyConfig(t)
	c.PrivateKeyFile = filepath.Join(t.TempDir(), "sub", "private.key")
	var b bytes.Buffer
	// This runs in the test's network namespace, where br0 with 192.168.86.1
	// normally does not exist: check then prints the plan all the same and
	// returns a *ConfigError naming LANInterface (the kernel tests cover
	// the namespace where it does exist).
	err := Check(c, Options{RunDir: t.TempDir()}, &b)
	var ce *config.ConfigError
	if err != nil && (!errors.As(err, &ce) || ce.Key != "LANInterface") {
		t.Fatalf("Check: %v; want nil or a *config.ConfigError for LANInterface", err)
	}
	if err != nil && !strings.Contains(b.String(), "not ready for it") {
		t.Errorf("check output does not say the system is not ready:\n%s", b.String())
	}
	for _, w := range []string{
		"from 192.168.86.0/24 iif br0 lookup 100",
		"unreachable default table 100",
		"ip_forward=1",
		"udp *:13231",
		"192.168.86.1:53",
		"127.0.0.1:9636",
		"does not exist yet",
	} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("check output lacks %q:\n%s", w, b.String())
		}
	}
	if _, err := os.Stat(filepath.Dir(c.PrivateKeyFile)); err == nil {
		t.Errorf("check created the key directory")
	}
}

// TestCheckBreakout: check prints the breakout's table, its rule, where
// the bypassed devices' and LocalDomains' questions go and what stays on
// stop.
func TestCheckBreakout(t *testing.T) {
	c := mustParse(t, withLine(t, "MetricsListen", "Bypass = 192.168.86.50, 02:11:22:33:44:55\nLocalDomains = example.de"))
	var b bytes.Buffer
	err := Check(c, Options{RunDir: t.TempDir()}, &b)
	var ce *config.ConfigError
	if err != nil && (!errors.As(err, &ce) || ce.Key != "LANInterface") {
		t.Fatalf("Check: %v", err)
	}
	for _, w := range []string{
		"fwmark 0x1000000/0x1000000 lookup main",
		"set bypassmac",
		"02:11:22:33:44:55",
		"bypass 192.168.86.50, 02:11:22:33:44:55: out through the local ISP, masqueraded; their DNS questions to 192.168.2.1:53 (from Resolver)",
		"their addresses followed in the neighbour table of br0",
		"local domains example.de (and below): asked of 192.168.2.1:53 (from Resolver) for every client",
		"on stop or crash the table and the bypass rule stay with the kill switch; fobgw down removes them",
	} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("check output lacks %q:\n%s", w, b.String())
		}
	}
	// Without Resolver, the first nameserver of resolv.conf that Resolver's rules accept.
	c.Resolver = nil
	c.ResolvConf = filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(c.ResolvConf, []byte("nameserver 192.168.86.1\nnameserver 192.168.2.1\nnameserver 192.168.2.9\n"), 0o644)
	b.Reset()
	Check(c, Options{RunDir: t.TempDir()}, &b)
	if w := "192.168.2.1:53 (from " + c.ResolvConf + ")"; !strings.Contains(b.String(), w) {
		t.Errorf("check output lacks %q:\n%s", w, b.String())
	}
}
