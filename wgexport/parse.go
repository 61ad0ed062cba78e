// Package wgexport reads a WireGuard device's state from the text of the
// UAPI get operation (wireguard-go's Device.IpcGet, the text `wg show` reads
// from the UAPI socket) and exports its peers' counters under the names and
// labels of mdlayher/wireguard_exporter, so that the dashboards built for it
// work on fobgw as they are.
//
// The state holds secrets: the device's private key and each peer's
// preshared key. Parse keeps neither (it derives the device's public key and
// notes whether a preshared key is set), and no error it returns quotes them.
//
// The gateway registers one collector beside its own fobgw_* metrics:
//
//	reg.MustRegister(wgexport.NewCollector(cfg.Name, tun.dev.IpcGet))
package wgexport

import (
	"crypto/ecdh"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Key is a Curve25519 public key.
type Key [32]byte

// String is the key in base64, as wg(8) and wg-quick show it.
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// Device is the state of a WireGuard device, without its secrets.
type Device struct {
	PublicKey    Key  // derived from the private key; zero when HasPublicKey is false
	HasPublicKey bool // the device has a private key
	ListenPort   int
	FirewallMark uint32
	Peers        []Peer // in the order of the text
}

// Peer is the state of one peer, without its preshared key.
type Peer struct {
	PublicKey           Key
	HasPresharedKey     bool
	Endpoint            netip.AddrPort // zero: none yet
	AllowedIPs          []netip.Prefix
	LastHandshake       time.Time // zero: never
	RxBytes, TxBytes    uint64
	PersistentKeepalive time.Duration
}

// ErrSyntax is wrapped by every error of Parse: the text is not the UAPI
// get operation's. It is not fatal: the next read may succeed.
var ErrSyntax = errors.New("malformed WireGuard UAPI state")

// Parse parses the text of the UAPI get operation
// (https://www.wireguard.com/xplatform/#configuration-protocol): device
// keys first, then one block per peer, each opened by public_key=. Keys it
// does not know are skipped (the protocol may grow); a trailing errno=0, as
// on the socket, is accepted, any other errno is an error. Values are
// checked whole: a bad number, key, address or a peer listed twice is an
// error naming the line and the key, and quoting the value only when it is
// not a secret.
func Parse(text string) (*Device, error) {
	d := &Device{}
	var p *Peer
	var sec, nsec int64
	seen := make(map[Key]bool)
	finishPeer := func() {
		if p != nil && (sec != 0 || nsec != 0) {
			p.LastHandshake = time.Unix(sec, nsec)
		}
		sec, nsec = 0, 0
	}
	n := 0
	for rest := text; rest != ""; {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		n++
		if line == "" {
			if strings.TrimLeft(rest, "\n") != "" {
				return nil, fmt.Errorf("%w: line %d: an empty line ends the state, but more follows", ErrSyntax, n)
			}
			break
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			// Not quoted: a broken line may hold a secret.
			return nil, fmt.Errorf("%w: line %d (%d bytes) is not key=value", ErrSyntax, n, len(line))
		}
		bad := func(want string) error {
			shown := quote(v)
			if k == "private_key" || k == "preshared_key" {
				shown = "(a secret, not shown)"
			}
			return fmt.Errorf("%w: line %d: %s=%s: want %s", ErrSyntax, n, quote(k), shown, want)
		}
		if k == "errno" {
			if v != "0" {
				return nil, fmt.Errorf("%w: line %d: the device answered errno=%s", ErrSyntax, n, quote(v))
			}
			continue
		}
		if k == "public_key" {
			finishPeer()
			key, ok := parseKey(v)
			if !ok {
				return nil, bad("64 hex digits")
			}
			if seen[key] {
				return nil, fmt.Errorf("%w: line %d: peer %s listed twice", ErrSyntax, n, key)
			}
			seen[key] = true
			d.Peers = append(d.Peers, Peer{PublicKey: key})
			p = &d.Peers[len(d.Peers)-1]
			continue
		}
		if p == nil {
			switch k {
			case "private_key":
				key, ok := parseKey(v)
				if !ok {
					return nil, bad("64 hex digits")
				}
				priv, err := ecdh.X25519().NewPrivateKey(key[:])
				clear(key[:])
				if err != nil {
					return nil, bad("a Curve25519 private key")
				}
				copy(d.PublicKey[:], priv.PublicKey().Bytes())
				d.HasPublicKey = true
			case "listen_port":
				u, err := strconv.ParseUint(v, 10, 16)
				if err != nil {
					return nil, bad("a port number, 0 to 65535")
				}
				d.ListenPort = int(u)
			case "fwmark":
				u, err := strconv.ParseUint(v, 10, 32)
				if err != nil {
					return nil, bad("a 32-bit number")
				}
				d.FirewallMark = uint32(u)
			}
			continue
		}
		switch k {
		case "preshared_key":
			key, ok := parseKey(v)
			if !ok {
				return nil, bad("64 hex digits")
			}
			p.HasPresharedKey = key != Key{}
			clear(key[:])
		case "endpoint":
			ap, err := netip.ParseAddrPort(v)
			if err != nil {
				return nil, bad("address:port")
			}
			p.Endpoint = ap
		case "allowed_ip":
			pf, err := netip.ParsePrefix(v)
			if err != nil {
				return nil, bad("address/bits")
			}
			p.AllowedIPs = append(p.AllowedIPs, pf)
		case "last_handshake_time_sec":
			s, err := strconv.ParseInt(v, 10, 64)
			if err != nil || s < 0 {
				return nil, bad("seconds since 1970")
			}
			sec = s
		case "last_handshake_time_nsec":
			s, err := strconv.ParseInt(v, 10, 64)
			if err != nil || s < 0 || s >= 1e9 {
				return nil, bad("nanoseconds, 0 to 999999999")
			}
			nsec = s
		case "rx_bytes", "tx_bytes":
			u, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, bad("a byte count")
			}
			if k == "rx_bytes" {
				p.RxBytes = u
			} else {
				p.TxBytes = u
			}
		case "persistent_keepalive_interval":
			u, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return nil, bad("seconds, 0 to 65535")
			}
			p.PersistentKeepalive = time.Duration(u) * time.Second
		case "private_key", "listen_port", "fwmark":
			return nil, fmt.Errorf("%w: line %d: device key %s inside the block of peer %s", ErrSyntax, n, quote(k), p.PublicKey)
		}
	}
	finishPeer()
	return d, nil
}

// parseKey decodes a key written as 64 hex digits.
func parseKey(s string) (Key, bool) {
	var k Key
	if len(s) != 2*len(k) {
		return k, false
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return Key{}, false
	}
	return k, true
}

// quote quotes s for an error message, cut to 64 bytes: the text comes from
// another process.
func quote(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}
