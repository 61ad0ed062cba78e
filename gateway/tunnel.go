package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fobgw/fobgw/config"
	"github.com/fobgw/fobgw/internal/chachapoly"
	"github.com/fobgw/fobgw/internal/netaddr"
	"github.com/fobgw/fobgw/mssclamp"
	"github.com/vishvananda/netlink"
	"golang.org/x/time/rate"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
)

// The data packets' cipher is internal/chachapoly's: the same
// ChaCha20-Poly1305, faster on full-size packets where the processor has
// AVX-512 (its package comment says which), x/crypto's everywhere else.
func init() { device.NewDataAEAD = chachapoly.New }

// UAPIDir is where wireguard-go's UAPI sockets live (`wg show` looks there).
const UAPIDir = "/var/run/wireguard"

// tunnel is the WireGuard device on a kernel TUN: TUN -> mssclamp -> pmtud
// -> wireguard-go.
type tunnel struct {
	name      string
	peer      config.Key
	keepalive int
	tun       tun.Device
	clamp     *mssclamp.Device // nil with ClampMSS = off
	pmtu      *pathMTU         // outermost: wireguard-go's tun.Device; the gateway's, closed with the tunnel
	dev       *device.Device
	uapi      net.Listener
	uerr      chan error // the UAPI listener failed (its socket was deleted, say)
	log       *slog.Logger
	hs        steadyHandshake
}

// steadyHandshake puts the device's handshake time, read from the wall
// clock, on the monotonic one. A board without a real-time clock often has
// its first handshake before NTP steps the clock forward, by hours after a
// power cut; by the wall clock that fresh handshake is then hours old, the
// healer would take the session for stale and re-resolve home's name, the
// captive-portal watcher for a tunnel that is down. Aged by the monotonic
// clock from when it was first read, it is as old as it is.
type steadyHandshake struct {
	mu       sync.Mutex
	start    time.Time // the device's creation (monotonic); zero: unknown
	lastRead time.Time // the previous call (monotonic)
	wall     time.Time // the device's last value
	steady   time.Time // its moment, with a monotonic reading
}

// of returns wall's moment as a time with a monotonic reading (zero for
// zero); now is time.Now(). A value not seen before gets its age by the wall
// clock, but never more than the monotonic time since the previous call
// (it is new since then) or since the device's creation, and never less
// than zero: a clock step in between cannot make it older than it can be.
func (s *steadyHandshake) of(wall, now time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	since := s.lastRead
	if since.IsZero() {
		since = s.start
	}
	s.lastRead = now
	if wall.IsZero() {
		return time.Time{}
	}
	if !wall.Equal(s.wall) {
		age := max(now.Round(0).Sub(wall), 0) // by the wall clock
		if !since.IsZero() {
			age = min(age, now.Sub(since))
		}
		s.wall, s.steady = wall, now.Add(-age)
	}
	return s.steady
}

// wgLogger adapts wireguard-go's printf logger to slog. Errors can be
// triggered by packets from the network, so they are rate-limited.
func wgLogger(log *slog.Logger) *device.Logger {
	lim := rate.NewLimiter(rate.Every(10*time.Second), 5) // a burst, then one per 10 s
	var suppressed atomic.Uint64
	verbosef := device.DiscardLogf // as wireguard-go's own LogLevelError
	if log.Enabled(context.Background(), slog.LevelDebug) {
		verbosef = func(format string, args ...any) { log.Debug(fmt.Sprintf(format, args...)) }
	}
	return &device.Logger{
		Verbosef: verbosef,
		Errorf: func(format string, args ...any) {
			if !lim.Allow() {
				suppressed.Add(1)
				return
			}
			if n := suppressed.Swap(0); n > 0 {
				log.Error(fmt.Sprintf(format, args...), "suppressed_before", n)
				return
			}
			log.Error(fmt.Sprintf(format, args...))
		},
	}
}

// uapiConfig is the IpcSet text that configures the device from cfg.
func uapiConfig(cfg *config.Config, priv config.Key, endpoint netip.AddrPort) string {
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\n", priv.Hex())
	fmt.Fprintf(&b, "listen_port=%d\n", cfg.ListenPort)
	b.WriteString("replace_peers=true\n")
	fmt.Fprintf(&b, "public_key=%s\n", cfg.PublicKey.Hex())
	if cfg.PresharedKey != nil {
		fmt.Fprintf(&b, "preshared_key=%s\n", cfg.PresharedKey.Hex())
	}
	if endpoint.IsValid() {
		fmt.Fprintf(&b, "endpoint=%s\n", endpoint)
	}
	b.WriteString("replace_allowed_ips=true\n")
	for _, p := range cfg.AllowedIPs {
		fmt.Fprintf(&b, "allowed_ip=%s\n", p)
	}
	if endpoint.IsValid() {
		// Without an endpoint a keepalive would only start a handshake
		// that fails and holds back the next one for REKEY_TIMEOUT (5 s);
		// SetEndpoint sets it with the endpoint.
		fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", cfg.PersistentKeepalive)
	}
	return b.String()
}

// clampMTU is the MTU argument of mssclamp.Wrap for cfg, and whether to wrap.
func clampMTU(cfg *config.Config) (int, bool) {
	switch cfg.ClampMode {
	case config.ClampOff:
		return 0, false
	case config.ClampFixed:
		return cfg.ClampMSS + 40, true
	}
	return 0, true // follow the device MTU
}

// uapiTries is how often listenUAPI creates the UAPI socket when it vanishes before it is watched.
const uapiTries = 3

// listenUAPI creates the UAPI socket NAME.sock (open: ipc.UAPIOpen) and listens on it
// (listen: ipc.UAPIListen, which also watches the file so that the gateway stops when it is
// deleted). When the file is gone between the two (a process that held the same path before
// removed it as it closed; seen once in the lab, at a restart), it tries again, up to
// uapiTries times, and says so.
func listenUAPI(name string, open func(string) (*os.File, error), listen func(string, *os.File) (net.Listener, error), log *slog.Logger) (net.Listener, error) {
	path := UAPIDir + "/" + name + ".sock"
	for try := 1; ; try++ {
		f, err := open(name)
		if err != nil {
			return nil, fmt.Errorf("open the UAPI socket %s: %w", path, err)
		}
		l, err := listen(name, f)
		f.Close()
		if err == nil {
			return l, nil
		}
		os.Remove(path)
		if !errors.Is(err, os.ErrNotExist) || try == uapiTries {
			return nil, fmt.Errorf("listen on the UAPI socket %s: %w", path, err)
		}
		log.Warn("the UAPI socket vanished as it was made; making it again", "socket", path, "try", try+1)
	}
}

// openTunnel creates the TUN, wrapped by mssclamp and pmtu, the device and
// the UAPI socket, sets the addresses, brings the link up and starts pmtu.
// On error it undoes what it did.
func openTunnel(h *netlink.Handle, cfg *config.Config, priv config.Key, pmtu *pathMTU, log *slog.Logger) (t *tunnel, err error) {
	t = &tunnel{name: cfg.Name, peer: cfg.PublicKey, keepalive: cfg.PersistentKeepalive, log: log, uerr: make(chan error, 1)}
	t.hs.start = time.Now()
	defer func() {
		if err != nil {
			t.close()
			t = nil
		}
	}()
	t.tun, err = tun.CreateTUN(cfg.Name, cfg.MTUCeiling())
	if err != nil {
		return t, fmt.Errorf("create TUN %s (needs CAP_NET_ADMIN and /dev/net/tun): %w", cfg.Name, err)
	}
	if nt, ok := t.tun.(*tun.NativeTun); ok {
		// Only the device writes to the TUN, and only packets that Poly1305
		// proved are what home sent: the TUN's coalescer need not check their
		// TCP and UDP checksums first, as the kernel's WireGuard does not
		// (patch 0013).
		nt.TrustChecksums(true)
	}
	var td tun.Device = t.tun
	if mtu, ok := clampMTU(cfg); ok {
		t.clamp = mssclamp.Wrap(t.tun, mtu)
		td = t.clamp
	}
	t.pmtu = pmtu
	td = pmtu.wrap(td)
	t.dev = device.NewDevice(td, conn.NewStdNetBind(), wgLogger(log.With("part", "wireguard")))
	var ep netip.AddrPort
	if cfg.Endpoint.IsLiteral() {
		ep = netip.AddrPortFrom(cfg.Endpoint.Addr, cfg.Endpoint.Port)
	}
	if err = t.dev.IpcSet(uapiConfig(cfg, priv, ep)); err != nil {
		return t, fmt.Errorf("configure the WireGuard device: %w", err)
	}
	if t.uapi, err = listenUAPI(cfg.Name, ipc.UAPIOpen, ipc.UAPIListen, log); err != nil {
		return t, err
	}
	go func() {
		for {
			c, err := t.uapi.Accept()
			if err != nil {
				t.uerr <- err
				return
			}
			go t.dev.IpcHandle(c)
		}
	}()
	link, err := h.LinkByName(cfg.Name)
	if err != nil {
		return t, fmt.Errorf("find the new TUN %s: %w", cfg.Name, err)
	}
	for _, a := range cfg.Address {
		if err = h.AddrReplace(link, &netlink.Addr{IPNet: netaddr.IPNet(a)}); err != nil {
			return t, fmt.Errorf("set address %v on %s: %w", a, cfg.Name, err)
		}
	}
	if err = h.LinkSetUp(link); err != nil {
		return t, fmt.Errorf("bring %s up: %w", cfg.Name, err)
	}
	if err = t.dev.Up(); err != nil {
		return t, fmt.Errorf("start WireGuard on UDP port %d (in use by another program?): %w", cfg.ListenPort, err)
	}
	if err = t.pmtu.start(cfg, link.Attrs().Index); err != nil {
		return t, err
	}
	return t, nil
}

// close stops the device; the TUN (and its routes) go with it.
func (t *tunnel) close() {
	t.pmtu.close()
	if t.uapi != nil {
		t.uapi.Close() // unlinks the socket
	}
	if t.dev != nil {
		t.dev.Close() // closes the TUN through the wrappers
	} else if t.pmtu != nil {
		t.pmtu.dev.Close()
	} else if t.clamp != nil {
		t.clamp.Close()
	} else if t.tun != nil {
		t.tun.Close()
	}
}

// SetEndpoint points the peer at ap.
func (t *tunnel) SetEndpoint(ap netip.AddrPort) error {
	return t.dev.IpcSet(fmt.Sprintf("public_key=%s\nupdate_only=true\nendpoint=%s\npersistent_keepalive_interval=%d\n", t.peer.Hex(), ap, t.keepalive))
}

// StartHandshake asks WireGuard to send a handshake initiation now (and to
// retry it as it does its own); it sends nothing within REKEY_TIMEOUT of its
// last initiation.
func (t *tunnel) StartHandshake() error {
	p := t.dev.LookupPeer(device.NoisePublicKey(t.peer))
	if p == nil {
		return errors.New("the peer is not configured")
	}
	return p.SendHandshakeInitiation(false)
}

// LastHandshake returns the time of the peer's last handshake (zero if none).
func (t *tunnel) LastHandshake() (time.Time, error) {
	ps, err := t.peerStats()
	return ps.LastHandshake, err
}

// RxBytes returns the bytes received from the peer.
func (t *tunnel) RxBytes() (uint64, error) {
	ps, err := t.peerStats()
	return ps.RxBytes, err
}

type peerStats struct {
	Endpoint      string
	LastHandshake time.Time
	RxBytes       uint64
	TxBytes       uint64
	ListenPort    int
}

// peerStats reads the peer's figures through the UAPI get operation.
// buffers returns the packet buffers' status: the device's pool, and the process's waits and
// drops for lack of room (conn's counters, which /metrics exports too).
func (t *tunnel) buffers() *BuffersStatus {
	noRoom, tooLarge := conn.DroppedForRoom()
	return &BuffersStatus{
		Pool:            t.dev.MessageBuffers(),
		Waits:           conn.WaitsForBuffer(),
		DroppedNoRoom:   noRoom,
		DroppedTooLarge: tooLarge,
	}
}

func (t *tunnel) peerStats() (peerStats, error) {
	s, err := t.dev.IpcGet()
	if err != nil {
		return peerStats{}, fmt.Errorf("read the WireGuard device state: %w", err)
	}
	ps := parseIpcGet(s, t.peer)
	ps.LastHandshake = t.hs.of(ps.LastHandshake, time.Now())
	return ps, nil
}

func parseIpcGet(s string, peer config.Key) peerStats {
	var ps peerStats
	var sec, nsec int64
	inPeer := false
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		if k == "public_key" {
			inPeer = v == peer.Hex()
			continue
		}
		if k == "listen_port" && !inPeer {
			ps.ListenPort, _ = strconv.Atoi(v)
		}
		if !inPeer {
			continue
		}
		switch k {
		case "endpoint":
			ps.Endpoint = v
		case "last_handshake_time_sec":
			sec, _ = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			nsec, _ = strconv.ParseInt(v, 10, 64)
		case "rx_bytes":
			ps.RxBytes, _ = strconv.ParseUint(v, 10, 64)
		case "tx_bytes":
			ps.TxBytes, _ = strconv.ParseUint(v, 10, 64)
		}
	}
	if sec != 0 || nsec != 0 {
		ps.LastHandshake = time.Unix(sec, nsec)
	}
	return ps
}

// uapiAlive reports whether a process answers on name's UAPI socket.
func uapiAlive(name string) bool {
	c, err := net.DialTimeout("unix", UAPIDir+"/"+name+".sock", time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// removeStaleLink deletes a TUN link called name left by a crashed run. A
// link of another kind is an error: it belongs to someone else.
func removeStaleLink(h *netlink.Handle, name string, log *slog.Logger) error {
	link, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("look for a leftover interface %s: %w", name, err)
	}
	if link.Type() != "tuntap" {
		return fmt.Errorf("interface %s exists and is a %q link, not fobgw's TUN: remove it (ip link del %s) or choose another Name in [Interface]",
			name, link.Type(), name)
	}
	if err := h.LinkDel(link); err != nil {
		return fmt.Errorf("delete the leftover TUN %s: %w", name, err)
	}
	log.Info("deleted a leftover TUN interface", "name", name)
	return nil
}

// Endpoint is the peer's endpoint as the device has it now (roaming
// follows the source of authenticated packets); invalid when none.
func (t *tunnel) Endpoint() (netip.AddrPort, error) {
	ps, err := t.peerStats()
	if err != nil || ps.Endpoint == "" {
		return netip.AddrPort{}, err
	}
	return netip.ParseAddrPort(ps.Endpoint)
}
