package wgexport

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn/bindtest"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// testPeer is a wireguard-go device on a channel TUN.
type testPeer struct {
	dev  *device.Device
	tun  *tuntest.ChannelTUN
	priv *ecdh.PrivateKey
	ip   netip.Addr
}

func newKey(t testing.TB) *ecdh.PrivateKey {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// devicePair brings up two wireguard-go devices connected by in-memory
// binds (conn/bindtest: no socket, no kernel TUN) and makes them shake
// hands with a ping each way. The first has a preshared key and a
// keepalive of 0, so that its counters stay still once the pings are done.
func devicePair(t *testing.T) (a, b *testPeer) {
	t.Helper()
	binds := bindtest.NewChannelBinds()
	psk := make([]byte, 32)
	rand.Read(psk)
	peers := [2]*testPeer{
		{tun: tuntest.NewChannelTUN(), priv: newKey(t), ip: netip.MustParseAddr("10.9.0.1")},
		{tun: tuntest.NewChannelTUN(), priv: newKey(t), ip: netip.MustParseAddr("10.9.0.2")},
	}
	for i, p := range peers {
		other := peers[1-i]
		p.dev = device.NewDevice(p.tun.TUN(), binds[i], device.NewLogger(device.LogLevelError, fmt.Sprintf("dev%d: ", i)))
		t.Cleanup(p.dev.Close)
		// bindtest sends to the other side when the endpoint's port is
		// this side's target: 1 for the first bind, 2 for the second.
		cfg := fmt.Sprintf("private_key=%x\nlisten_port=0\nreplace_peers=true\npublic_key=%x\npreshared_key=%x\nendpoint=127.0.0.1:%d\nreplace_allowed_ips=true\nallowed_ip=%s/32\nallowed_ip=fd00:9::/64\n",
			p.priv.Bytes(), other.priv.PublicKey().Bytes(), psk, i+1, other.ip)
		if err := p.dev.IpcSet(cfg); err != nil {
			t.Fatalf("configure device %d: %v", i, err)
		}
		if err := p.dev.Up(); err != nil {
			t.Fatalf("bring up device %d: %v", i, err)
		}
	}
	ping := func(from, to *testPeer) {
		t.Helper()
		from.tun.Outbound <- tuntest.Ping(to.ip, from.ip)
		select {
		case <-to.tun.Inbound:
		case <-time.After(10 * time.Second):
			t.Fatalf("no ping from %v reached %v through the tunnel", from.ip, to.ip)
		}
	}
	ping(peers[0], peers[1])
	ping(peers[1], peers[0])
	return peers[0], peers[1]
}

// serveUAPI serves dev's UAPI socket as the gateway does, where wg(8) looks
// for it (/var/run/wireguard/NAME.sock), and removes it at the end.
func serveUAPI(t *testing.T, name string, dev *device.Device) {
	t.Helper()
	f, err := ipc.UAPIOpen(name)
	if err != nil {
		t.Fatalf("open the UAPI socket (needs root): %v", err)
	}
	ln, err := ipc.UAPIListen(name, f)
	f.Close()
	if err != nil {
		t.Fatalf("listen on the UAPI socket: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go dev.IpcHandle(c)
		}
	}()
}

// TestCollectorMatchesWgShow: the series of a real wireguard-go device,
// after a handshake and traffic both ways, agree with what `wg show NAME
// dump` (wireguard-tools) says of it through its UAPI socket, and the dump's
// secrets are in no series.
func TestCollectorMatchesWgShow(t *testing.T) {
	wg, err := exec.LookPath("wg")
	if err != nil {
		t.Fatal("wg (wireguard-tools) is missing: install the Debian packages with `make deps`")
	}
	a, b := devicePair(t)
	name := fmt.Sprintf("wgxt%d", os.Getpid()%100000)
	if uapiInUse(name) {
		t.Fatalf("a UAPI socket /var/run/wireguard/%s.sock answers already", name)
	}
	serveUAPI(t, name, a.dev)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, wg, "show", name, "dump").Output()
	if err != nil {
		t.Fatalf("wg show %s dump: %v", name, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("wg show dump gave %d lines, want the device and one peer", len(lines))
	}
	// Device: private-key public-key listen-port fwmark.
	dev := strings.Split(lines[0], "\t")
	// Peer: public-key preshared-key endpoint allowed-ips latest-handshake
	// transfer-rx transfer-tx persistent-keepalive.
	peer := strings.Split(lines[1], "\t")
	if len(dev) != 4 || len(peer) != 8 {
		t.Fatalf("wg show dump: %d device fields and %d peer fields, want 4 and 8", len(dev), len(peer))
	}
	if want := base64.StdEncoding.EncodeToString(a.priv.PublicKey().Bytes()); dev[1] != want {
		t.Fatalf("wg show says the device's public key is %s, the test made %s", dev[1], want)
	}

	fams, text, err := scrape(t, NewCollector(name, a.dev.IpcGet))
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"device": name, "public_key": peer[0]}
	for _, tc := range []struct {
		metric string
		field  int
	}{
		{MetricPeerLastHandshake, 4},
		{MetricPeerReceiveBytes, 5},
		{MetricPeerTransmitBytes, 6},
	} {
		want, err := strconv.ParseFloat(peer[tc.field], 64)
		if err != nil {
			t.Fatalf("wg show dump field %d: %v", tc.field, err)
		}
		if want == 0 {
			t.Errorf("wg show dump field %d is 0: no handshake or traffic, the comparison would be empty", tc.field)
		}
		if got := series(t, fams, tc.metric, labels); got != want {
			t.Errorf("%s = %v, wg show dump says %v", tc.metric, got, want)
		}
	}
	info := map[string]string{"device": name, "public_key": peer[0], "endpoint": peer[2], "allowed_ips": peer[3]}
	series(t, fams, MetricPeerInfo, info)
	series(t, fams, MetricDeviceInfo, map[string]string{"device": name, "public_key": dev[1]})
	if b.priv.PublicKey().Equal(a.priv.PublicKey()) {
		t.Fatal("the two devices have the same key")
	}
	// The dump shows the private and preshared keys in base64; the
	// exposition has neither, in any encoding.
	for _, secret := range []string{dev[0], peer[1], hex.EncodeToString(a.priv.Bytes())} {
		if strings.Contains(text, secret) {
			t.Errorf("the exposition holds a secret of the dump")
		}
	}
}

func uapiInUse(name string) bool {
	c, err := net.DialTimeout("unix", "/var/run/wireguard/"+name+".sock", time.Second)
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) && !strings.Contains(err.Error(), "refused")
	}
	c.Close()
	return true
}
