// Package configtest holds the story's configuration file for tests of the
// packages that read it, and the helpers that vary one of its lines.
package configtest

import (
	"strings"
	"testing"
)

// Base is the story's FOB; line numbers matter to the tests that use it.
const Base = `[Interface]
Name = fobgw0
PrivateKeyFile = /var/lib/fobgw/private.key
ListenPort = 13231
Address = 10.1.200.2/24
MTU = 1420

[Peer]
PublicKey = If7ysNHrNZ2PmoVW1ckVL1FQApOBPORTAWgAq82zXSA=
Endpoint = home.example.net:13231
AllowedIPs = 0.0.0.0/0
PersistentKeepalive = 25

[Gateway]
LAN = 192.168.86.0/24
LANInterface = br0
Table = 100
HomeNetworks = 192.168.88.0/24
DNSListen = 192.168.86.1:53
DNSUpstream = 192.168.88.1
Resolver = 192.168.2.1
ClampMSS = auto
KillSwitch = on
MetricsListen = 127.0.0.1:9636
`

// WithLine returns Base with the line starting with "key =" replaced by
// repl ("" deletes it, keeping the line count by leaving it empty).
func WithLine(tb testing.TB, key, repl string) string {
	tb.Helper()
	return ReplaceLine(tb, Base, key, repl)
}

// ReplaceLine is WithLine on any text: the line of key replaced by repl.
func ReplaceLine(tb testing.TB, text, key, repl string) string {
	tb.Helper()
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, key+" =") {
			lines[i] = repl
			return strings.Join(lines, "\n")
		}
	}
	tb.Fatalf("the config has no key %q", key)
	return ""
}
