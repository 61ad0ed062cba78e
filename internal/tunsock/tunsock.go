// Package tunsock is the one home of sockets bound to the tunnel interface
// and of the probe sent through them. dnsfwd uses it for the upstream
// queries and its upstream check, gateway for the endpoint healer's probe:
// a socket bound to the tunnel (SO_BINDTODEVICE, socket(7)) cannot leave by
// another interface whatever the routing tables say, so an answer to it
// proves the tunnel carries packets both ways.
package tunsock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DialFunc dials like net.Dialer.DialContext.
type DialFunc = func(ctx context.Context, network, address string) (net.Conn, error)

// Control returns a net.Dialer Control function that binds the socket to
// iface before it connects, then calls more (when not nil) with the
// network and the socket, for further options. The error of a failed bind
// names the interface and what to do.
func Control(iface string, more func(network string, fd int)) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.BindToDevice(int(fd), iface)
			if serr == nil && more != nil {
				more(network, int(fd))
			}
		})
		if err == nil {
			err = serr
		}
		if err != nil {
			return bindError(iface, err)
		}
		return nil
	}
}

// Dialer returns a dial function whose sockets are bound to iface (see
// Control) and time out after timeout (0: none but the context's).
func Dialer(iface string, timeout time.Duration, more func(network string, fd int)) DialFunc {
	d := &net.Dialer{Timeout: timeout, Control: Control(iface, more)}
	return d.DialContext
}

func bindError(iface string, err error) error {
	switch {
	case errors.Is(err, unix.ENODEV):
		return fmt.Errorf("bind socket to tunnel interface %q: no such interface: start the WireGuard device first: %w", iface, err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("bind socket to tunnel interface %q: SO_BINDTODEVICE needs CAP_NET_RAW: run as root or grant it: %w", iface, err)
	}
	return fmt.Errorf("bind socket to tunnel interface %q: %w", iface, err)
}
