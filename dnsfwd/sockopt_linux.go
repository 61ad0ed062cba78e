package dnsfwd

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/fobgw/fobgw/internal/tunsock"
	"golang.org/x/sys/unix"
)

// boundDialer returns a dialer whose sockets are bound to the interface iface (tunsock.Control)
// before they connect, so that a query cannot leave by another interface whatever the routing tables
// say; UDP sockets get a large receive buffer.
func boundDialer(iface string, timeout time.Duration) tunsock.DialFunc {
	return tunsock.Dialer(iface, timeout, func(network string, fd int) {
		if strings.HasPrefix(network, "udp") {
			largeReceiveBuffer(fd)
		}
	})
}

// receiveBuffer is the UDP receive buffer asked for, per socket (the kernel doubles it for its
// bookkeeping): with about 1 KiB charged per small datagram, some 2,000 queries per listening socket,
// half a second of 3,000 queries/s on each of them, so that a burst or a short stall of the process
// (the CPU is shared with the tunnel) loses nothing. dnsperf on loopback lost no query with it at a
// steady 3,000 queries/s, and as many (about 0.01 %, not at the forwarder's sockets) at full rate
// (-c 4 -q 500, over 100,000 queries/s) as with 4 MiB, which only cost up to 8 MiB of kernel memory
// per socket on a 512 MB board.
const receiveBuffer = 1 << 20

// largeReceiveBuffer enlarges the socket's receive buffer beyond net.core.rmem_max if the process may
// (CAP_NET_ADMIN), else up to it. Only this socket changes; failure leaves the default.
func largeReceiveBuffer(fd int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBuffer) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, receiveBuffer)
	}
}

// listenControl sets SO_REUSEPORT so that several UDP sockets share the listening address and the
// kernel spreads clients over them, and a large receive buffer.
func listenControl(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		largeReceiveBuffer(int(fd))
	})
	if err == nil {
		err = serr
	}
	return err
}

// listenError explains a failure to bind the listening address addr.
func listenError(proto string, addr fmt.Stringer, err error) error {
	switch {
	case errors.Is(err, unix.EADDRNOTAVAIL):
		return fmt.Errorf("dnsfwd: listen %s on %s: the address is not on any interface: is LANInterface up with that address? %w", proto, addr, err)
	case errors.Is(err, unix.EACCES):
		return fmt.Errorf("dnsfwd: listen %s on %s: ports below 1024 need CAP_NET_BIND_SERVICE: run as root or grant it (systemd AmbientCapabilities=CAP_NET_BIND_SERVICE): %w", proto, addr, err)
	case errors.Is(err, unix.EADDRINUSE):
		return fmt.Errorf("dnsfwd: listen %s on %s: another DNS server (dnsmasq, systemd-resolved, Pi-hole) already uses it: stop it or change DNSListen: %w", proto, addr, err)
	}
	return fmt.Errorf("dnsfwd: listen %s on %s: %w", proto, addr, err)
}
