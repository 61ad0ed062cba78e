package wgexport

import (
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// RFC 7748, section 6.1: Alice's private key and the public key it gives.
const (
	rfcPrivate = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
	rfcPublic  = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
	peerA      = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
	peerB      = "2122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40"
	psk        = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f"
	zeroKey    = "0000000000000000000000000000000000000000000000000000000000000000"
)

// sample is the text wireguard-go's IpcGet gives for a device with two
// peers: one with a preshared key, an endpoint and a handshake, one fresh.
const sample = "private_key=" + rfcPrivate + `
listen_port=13231
fwmark=51
public_key=` + peerA + `
preshared_key=` + psk + `
protocol_version=1
endpoint=198.51.100.2:13231
last_handshake_time_sec=1764321720
last_handshake_time_nsec=500000000
tx_bytes=1234
rx_bytes=567890
persistent_keepalive_interval=25
allowed_ip=0.0.0.0/0
allowed_ip=::/0
public_key=` + peerB + `
preshared_key=` + zeroKey + `
protocol_version=1
last_handshake_time_sec=0
last_handshake_time_nsec=0
tx_bytes=0
rx_bytes=0
persistent_keepalive_interval=0
`

func mustKey(t testing.TB, h string) Key {
	t.Helper()
	k, ok := parseKey(h)
	if !ok {
		t.Fatalf("bad test key %s", h)
	}
	return k
}

func TestParse(t *testing.T) {
	d, err := Parse(sample)
	if err != nil {
		t.Fatal(err)
	}
	if !d.HasPublicKey || hex.EncodeToString(d.PublicKey[:]) != rfcPublic {
		t.Errorf("device public key %x (set %v), want %s (RFC 7748's Alice)", d.PublicKey, d.HasPublicKey, rfcPublic)
	}
	if d.ListenPort != 13231 || d.FirewallMark != 51 {
		t.Errorf("listen port %d, fwmark %d; want 13231, 51", d.ListenPort, d.FirewallMark)
	}
	if len(d.Peers) != 2 {
		t.Fatalf("%d peers, want 2", len(d.Peers))
	}
	a, b := d.Peers[0], d.Peers[1]
	if a.PublicKey != mustKey(t, peerA) || b.PublicKey != mustKey(t, peerB) {
		t.Errorf("peer keys %s, %s", a.PublicKey, b.PublicKey)
	}
	if !a.HasPresharedKey || b.HasPresharedKey {
		t.Errorf("preshared keys: %v, %v; want true, false (all zero means none)", a.HasPresharedKey, b.HasPresharedKey)
	}
	if a.Endpoint != netip.MustParseAddrPort("198.51.100.2:13231") || b.Endpoint.IsValid() {
		t.Errorf("endpoints %v, %v", a.Endpoint, b.Endpoint)
	}
	if want := time.Unix(1764321720, 5e8); !a.LastHandshake.Equal(want) || !b.LastHandshake.IsZero() {
		t.Errorf("handshakes %v, %v; want %v and never", a.LastHandshake, b.LastHandshake, want)
	}
	if a.RxBytes != 567890 || a.TxBytes != 1234 || a.PersistentKeepalive != 25*time.Second {
		t.Errorf("rx %d tx %d keepalive %v", a.RxBytes, a.TxBytes, a.PersistentKeepalive)
	}
	if len(a.AllowedIPs) != 2 || a.AllowedIPs[1] != netip.MustParsePrefix("::/0") || len(b.AllowedIPs) != 0 {
		t.Errorf("allowed IPs %v, %v", a.AllowedIPs, b.AllowedIPs)
	}
}

func TestParseAccepts(t *testing.T) {
	for _, tc := range []struct{ name, text string }{
		{"empty device", ""},
		{"socket answer with errno and blank line", "listen_port=1\nerrno=0\n\n"},
		{"unknown keys skipped", "listen_port=1\nfuture_key=x\npublic_key=" + peerA + "\nfuture_peer_key=y\n"},
		{"no newline at the end", "public_key=" + peerA + "\nrx_bytes=5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.text); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	peer := "public_key=" + peerA + "\n"
	for _, tc := range []struct{ name, text, want string }{
		{"not key=value", "listen_port 5\n", "line 1 (13 bytes) is not key=value"},
		{"errno", "errno=13\n", "errno=\"13\""},
		{"text after the blank line", "listen_port=1\n\nlisten_port=2\n", "line 2: an empty line ends"},
		{"short public key", "public_key=abcd\n", "line 1: \"public_key\"=\"abcd\": want 64 hex digits"},
		{"peer twice", peer + peer, "line 2: peer AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA= listed twice"},
		{"port too big", "listen_port=65536\n", "want a port number"},
		{"negative bytes", peer + "rx_bytes=-1\n", "line 2: \"rx_bytes\"=\"-1\""},
		{"nsec too big", peer + "last_handshake_time_nsec=1000000000\n", "want nanoseconds"},
		{"bad endpoint", peer + "endpoint=home.example:13231\n", "want address:port"},
		{"bad allowed ip", peer + "allowed_ip=10.0.0.1\n", "want address/bits"},
		{"device key in a peer", peer + "listen_port=5\n", "device key \"listen_port\" inside the block of peer"},
		{"long value cut", peer + "endpoint=" + strings.Repeat("x", 200) + "\n", strings.Repeat("x", 64) + "\"...: want"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.text)
			if err == nil {
				t.Fatalf("parsed %q", tc.text)
			}
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("%v is not ErrSyntax", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
}

// TestParseErrorsHideSecrets: a malformed private or preshared key is
// reported without its value.
func TestParseErrorsHideSecrets(t *testing.T) {
	const secret = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ecZ" // 64 chars, one not hex
	for _, text := range []string{
		"private_key=" + secret + "\n",
		"private_key=" + secret[:40] + "\n",
		"public_key=" + peerA + "\npreshared_key=" + secret + "\n",
		"public_key=" + peerA + "\npreshared_key=" + secret[:10] + "\n",
		"private_key" + secret + "\n",
	} {
		_, err := Parse(text)
		if err == nil {
			t.Fatalf("parsed %q", text)
		}
		if strings.Contains(err.Error(), secret[:10]) {
			t.Errorf("error quotes the secret: %v", err)
		}
	}
}

// FuzzParse: Parse never panics, its error never quotes the value of a
// private_key or preshared_key line, and every peer it returns is in the text.
func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Add("private_key=" + rfcPrivate[:63] + "g\n")
	f.Add("public_key=" + peerA + "\nendpoint=[::1]:5\nallowed_ip=fe80::/64\n\n")
	f.Add("errno=0\n")
	f.Fuzz(func(t *testing.T, text string) {
		d, err := Parse(text)
		var secrets []string
		for _, line := range strings.Split(text, "\n") {
			k, v, _ := strings.Cut(line, "=")
			if (k == "private_key" || k == "preshared_key") && len(v) >= 8 {
				secrets = append(secrets, v)
			}
		}
		if err != nil {
			for _, s := range secrets {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("error %q quotes secret %q", err, s)
				}
			}
			return
		}
		for _, p := range d.Peers {
			if !strings.Contains(strings.ToLower(text), "public_key="+hex.EncodeToString(p.PublicKey[:])) {
				t.Fatalf("peer %s is not in the text", p.PublicKey)
			}
		}
	})
}
